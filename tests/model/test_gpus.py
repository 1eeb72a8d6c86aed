from pathlib import Path

import pytest

from components.docker.devices import DeviceRequest, container_gpu_settings, docker_gpus_flag, visible_devices
from components.model.gpus import GpuSpec, GpuSpecError, check_listed_gpus, parse_gpus, parse_nvidia_smi_list

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "nvidia-smi"
UUID = "GPU-b780f725-fe96-b196-3303-e4a68e6a6860"


@pytest.mark.parametrize("value", [None, "", "none", " None ", [], False])
def test_no_gpus(value):
    assert parse_gpus(value) == GpuSpec("none")
    assert docker_gpus_flag(parse_gpus(value)) is None


@pytest.mark.parametrize(
    ("value", "flag", "visible"),
    [
        ("all", "all", "all"),
        ("count=2", "count=2", "0,1"),
        (3, "count=3", "0,1,2"),
        ("0,1", '"device=0,1"', "0,1"),
        ("0, 2", '"device=0,2"', "0,2"),
        ([0, 1], '"device=0,1"', "0,1"),
        ('["0","1"]', '"device=0,1"', "0,1"),  # how the engine passes a YAML list
        (UUID, f'"device={UUID}"', UUID),
        (f"0,{UUID}", f'"device=0,{UUID}"', f"0,{UUID}"),
        ('"device=1"', '"device=1"', "1"),
    ],
)
def test_parse_and_render(value, flag, visible):
    spec = parse_gpus(value)
    assert docker_gpus_flag(spec) == flag
    assert visible_devices(spec) == visible


def test_device_list_carries_its_own_quotes():
    # Docker reads --gpus as CSV: without the inner quotes "device=0,1" would be two fields.
    assert str(docker_gpus_flag(parse_gpus("0,1"))).startswith('"device=')


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0,,1", "empty entry"),
        ("0,0", "listed twice"),
        ("gpu0", "neither a GPU index"),
        ("GPU-1234", "neither a GPU index"),
        ("count=0", "at least 1"),
        ("-1", "neither a GPU index"),
        (True, "not a GPU selection"),
        ("count=99", "more than any host"),
    ],
)
def test_bad_values(value, message):
    with pytest.raises(GpuSpecError, match=message):
        parse_gpus(value)


@pytest.mark.parametrize(
    ("value", "count", "ids"),
    [("all", -1, ()), ("count=2", 2, ()), ("0,1", 0, ("0", "1")), (UUID, 0, (UUID,))],
)
def test_device_requests(value, count, ids):
    req = container_gpu_settings(parse_gpus(value), "device-requests").device_request
    assert req == DeviceRequest(count=count, device_ids=ids, driver="nvidia", capabilities=("gpu",))
    # Docker refuses a request with both (the trap of an unquoted "device=0,1" --gpus string)
    assert not (req.count and req.device_ids)


def test_settings_per_mode():
    spec = parse_gpus("0,1")
    legacy = container_gpu_settings(spec, "nvidia-runtime")
    assert legacy.runtime == "nvidia" and legacy.device_request is None
    assert "NVIDIA_VISIBLE_DEVICES=0,1" in legacy.envs
    assert container_gpu_settings(GpuSpec("none"), "nvidia-runtime").runtime is None


def test_parses_real_nvidia_smi_list():
    listed = parse_nvidia_smi_list((TESTDATA / "h200-list.txt").read_text())
    assert [(g.index, g.name, g.uuid) for g in listed] == [(0, "NVIDIA H200", UUID)]


def test_listed_gpus_against_request():
    listed = parse_nvidia_smi_list((TESTDATA / "h200-list.txt").read_text())
    assert check_listed_gpus(parse_gpus("all"), listed) == []
    assert check_listed_gpus(parse_gpus(UUID), listed) == []
    assert check_listed_gpus(parse_gpus("0"), listed) == []
    assert "sees 1" in check_listed_gpus(parse_gpus("0,1"), listed)[0]
    missing = "GPU-00000000-0000-0000-0000-000000000000"
    assert any(missing in p for p in check_listed_gpus(parse_gpus(missing), listed))
    assert check_listed_gpus(parse_gpus("all"), []) == ["nvidia-smi listed no GPU"]


def test_table_output_is_not_mistaken_for_a_list():
    assert parse_nvidia_smi_list((TESTDATA / "h200-table.txt").read_text()) == []


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [("", "device-requests", None), ("all", "device-requests", 0), ("count=3", "device-requests", 3),
     ("0,1", "device-requests", 2), (UUID, "device-requests", 1), ("all", "nvidia-runtime", 0),
     ("0,2,5", "nvidia-runtime", 3), ("", "nvidia-runtime", None)],
)
def test_how_many_gpus_the_health_check_expects(value, mode, expected):
    from components.docker.devices import expected_gpus

    assert expected_gpus(container_gpu_settings(parse_gpus(value), mode)) == expected


def test_no_gpus_is_void_for_both_modes_and_expects_no_gpu():
    from components.docker.devices import expected_gpus

    for mode in ("device-requests", "nvidia-runtime"):
        settings = container_gpu_settings(GpuSpec("none"), mode)
        assert settings.envs == ("NVIDIA_VISIBLE_DEVICES=void",) and settings.runtime is None and settings.device_request is None
        assert expected_gpus(settings) is None, "the health probe must not wait for GPUs a void container never has"
