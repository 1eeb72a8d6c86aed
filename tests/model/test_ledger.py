"""The GPU ledger (components/model/ledger.py): one GPU, one seat, unless both opt in to sharing."""

from pathlib import Path

from components.docker.host_state import claim_from_inspect
from components.model.gpus import GpuSpec, parse_gpus, parse_nvidia_smi_list
from components.model.ledger import Claim, ledger_problems, ledger_table, resolve

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "nvidia-smi"
LISTING = parse_nvidia_smi_list(
    "GPU 0: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6860)\n"
    "GPU 1: NVIDIA H200 (UUID: GPU-c780f725-fe96-b196-3303-e4a68e6a6861)\n"
)
UUID0, UUID1 = LISTING[0].uuid, LISTING[1].uuid


def seat(name, gpus, shared=False, stack="box", index=0):
    return Claim(stack=stack, seat=name, gpus=parse_gpus(gpus), shared=shared, key=f"tfbox:seats[{index}].gpus")


def test_own_gpus_are_fine():
    assert ledger_problems([seat("a", "0"), seat("b", "1", index=1)]) == []
    assert ledger_problems([seat("a", "0"), seat("b", "")], listing=LISTING) == []


def test_two_seats_on_one_gpu_name_both_seats_the_gpu_and_the_fix():
    [problem] = ledger_problems([seat("a", "0,1"), seat("b", "1", index=1)])
    assert problem.startswith("tfbox:seats[1].gpus: seat 'a' and seat 'b' both ask for GPU 1.")
    assert "shareGpus: true" in problem and "Fix:" in problem


def test_sharing_needs_both_seats_to_opt_in():
    assert ledger_problems([seat("a", "0", shared=True), seat("b", "0", shared=True, index=1)]) == []
    assert len(ledger_problems([seat("a", "0", shared=True), seat("b", "0", index=1)])) == 1


def test_an_index_and_a_uuid_of_one_gpu_are_one_gpu_when_the_listing_says_so():
    claims = [seat("a", "0"), seat("b", UUID0, index=1)]
    assert ledger_problems(claims) == [], "without nvidia-smi's list an index and a UUID cannot be compared"
    [problem] = ledger_problems(claims, listing=LISTING)
    assert f"seat 'a' and seat 'b' both ask for GPU 0 ({UUID0})" in problem
    # UUIDs compare case-insensitively
    assert ledger_problems([seat("a", UUID1), seat("b", UUID1.upper(), index=1)]) != []


def test_all_takes_every_gpu():
    [problem] = ledger_problems([seat("a", "all"), seat("b", "1", index=1)])
    assert "seat 'a' and seat 'b' both ask for GPU 1" in problem
    [problem] = ledger_problems([seat("a", "all"), seat("b", "all", index=1)])
    assert "every GPU (all)" in problem
    assert ledger_problems([seat("a", "all", shared=True), seat("b", "1", shared=True, index=1)]) == []


def test_count_must_be_named_on_a_multi_seat_gpu_stack():
    problems = ledger_problems([seat("a", "count=2"), seat("b", "3", index=1)])
    assert any('asks for count=2, which Docker gives as GPUs 0,1' in p and 'write gpus: "0,1"' in p for p in problems)
    assert ledger_problems([seat("a", "count=2")]) == [], "a single GPU seat may take any count"


def test_gpus_the_machine_does_not_have():
    [problem] = ledger_problems([seat("a", "5")], listing=LISTING)
    assert problem.startswith("tfbox:seats[0].gpus: seat 'a' asks for GPU 5, which this machine does not have: "
                              f"its nvidia-smi -L lists GPU 0 ({LISTING[0].name}, {UUID0}), GPU 1 ({LISTING[1].name}, {UUID1}). ")
    assert "Fix: name GPUs it lists, by index or UUID, e.g. `pulumi config set --path 'tfbox:seats[0].gpus' 0`" in problem
    [problem] = ledger_problems([seat("a", "GPU-00000000-0000-0000-0000-000000000000")], listing=LISTING)
    assert "asks for GPU-00000000-0000-0000-0000-000000000000, which this machine does not have" in problem


def test_a_single_lab_names_tfbox_gpus_and_every_absent_gpu_at_once():
    lab = Claim("gpu-box", "", parse_gpus(f"1,7,{UUID0},GPU-00000000-0000-0000-0000-000000000000"), key="tfbox:gpus")
    [problem] = ledger_problems([lab], listing=LISTING)
    assert problem.startswith("tfbox:gpus: stack 'gpu-box' asks for GPU 7, GPU-00000000-0000-0000-0000-000000000000, "
                              "which this machine does not have")
    assert "`pulumi config set tfbox:gpus 0`" in problem
    assert ledger_problems([Claim("gpu-box", "", parse_gpus("count=3"), key="tfbox:gpus")], listing=LISTING)[0].startswith(
        "tfbox:gpus: stack 'gpu-box' asks for GPU 2, which"), "count=3 is GPUs 0..2"
    assert ledger_problems([Claim("gpu-box", "", parse_gpus("all"), key="tfbox:gpus")], listing=LISTING) == []
    mig = "MIG-00000000-0000-0000-0000-000000000000"  # not among the listing's GPU lines: left to the GPU check
    assert ledger_problems([Claim("gpu-box", "", parse_gpus(mig), key="tfbox:gpus")], listing=LISTING) == []


def test_other_stacks_claims_name_the_other_stack_and_seat():
    mine = [seat("a", "0"), seat("b", "1", index=1)]
    others = [Claim("team-box", "carol", parse_gpus(UUID1)), Claim("old-lab", "", parse_gpus("all"), shared=True)]
    problems = ledger_problems(mine, others, LISTING)
    assert any(p.startswith("tfbox:seats[1].gpus: seat 'b' asks for GPU 1") and "stack 'team-box' seat 'carol'" in p
               for p in problems)
    # the single-seat lab took every GPU; it opted in to sharing but seat a did not
    assert any("stack 'old-lab' on the same Docker host" in p and "seat 'a'" in p for p in problems)
    assert ledger_problems(mine, [Claim("box", "a", parse_gpus("0"))]) == [], "this stack's own claims are not 'others'"


def test_ledger_table_names_gpus_by_index_uuid_and_model():
    table = ledger_table([seat("a", "0"), seat("b", UUID1, index=1)], LISTING)
    assert table == {
        "0": {"index": 0, "uuid": UUID0, "model": "NVIDIA H200", "seats": ["a"]},
        "1": {"index": 1, "uuid": UUID1, "model": "NVIDIA H200", "seats": ["b"]},
    }
    assert ledger_table([seat("a", "0"), seat("b", "0", shared=True)]) == {
        "0": {"index": 0, "uuid": None, "model": None, "seats": ["a", "b"]}}
    assert ledger_table([seat("a", "all")]) == {"all": {"index": None, "uuid": None, "model": None, "seats": ["a"]}}
    assert ledger_table([Claim("box", "", GpuSpec("none"))]) == {}


def test_a_real_nvidia_smi_list_resolves_indices_to_uuids():
    listing = parse_nvidia_smi_list((TESTDATA / "h200-list.txt").read_text())
    assert listing
    last = listing[-1]
    assert resolve(str(last.index), listing).key == resolve(last.uuid, listing).key == last.uuid.lower()
    [problem] = ledger_problems([seat("a", str(last.index)), seat("b", last.uuid.upper(), index=1)],
                                listing=listing)
    assert f"both ask for GPU {last.index} ({last.uuid})" in problem


def inspect(labels, device_requests=None, env=(), runtime="runc"):
    return {"Config": {"Labels": labels, "Env": list(env)},
            "HostConfig": {"DeviceRequests": device_requests, "Runtime": runtime}}


def test_claims_read_back_from_docker_inspect():
    seat_labels = {"tfbox.stack": "team", "tfbox.role": "notebook", "tfbox.seat": "carol", "tfbox.share-gpus": "false"}
    gpu = [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]]}]
    assert claim_from_inspect(inspect(seat_labels, gpu)) == Claim("team", "carol", parse_gpus("1"), shared=False)
    every = [{"Driver": "nvidia", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]]}]
    legacy = {"tfbox.stack": "old", "tfbox.role": "notebook"}
    assert claim_from_inspect(inspect(legacy, every)) == Claim("old", "", GpuSpec("all"))
    shared = claim_from_inspect(inspect({**seat_labels, "tfbox.share-gpus": "true"},
                                        env=["NVIDIA_VISIBLE_DEVICES=0,1"], runtime="nvidia"))
    assert shared == Claim("team", "carol", parse_gpus("0,1"), shared=True)
    assert claim_from_inspect(inspect(seat_labels)) is None, "no GPUs, no claim"
    assert claim_from_inspect(inspect({**seat_labels, "tfbox.role": "tensorboard"}, gpu)) is None
    assert claim_from_inspect(inspect({"tfbox.role": "notebook"}, gpu)) is None, "not a tfbox stack's container"
