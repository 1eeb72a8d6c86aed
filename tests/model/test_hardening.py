"""Hardening settings and notebook resources: parsing the config values, and the spellings the
docker provider reads back (any other spelling replaces the notebook on every `up`)."""

import pytest

from components.docker.hardening import provider_cpus, provider_mib
from components.model.hardening import (
    GIB,
    MIB,
    NO_NEW_PRIVILEGES,
    NotebookResources,
    Ulimit,
    gpu_check_hardening,
    notebook_hardening,
    parse_cpus,
    parse_notebook_resources,
    parse_size,
    parse_ulimits,
    tensorboard_hardening,
)


@pytest.mark.parametrize(("text", "size"), [
    ("1g", GIB), ("1G", GIB), ("1gb", GIB), ("1GiB", GIB), ("512m", 512 * MIB), ("1.5g", 1536 * MIB),
    ("2048k", 2 * MIB), (str(GIB), GIB), ("1t", 1024 * GIB),
])
def test_sizes_read_like_docker_run(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1x", "g", "-1g", "1.5", "1000k", "1 g b", "0.1m"])
def test_sizes_that_are_not_whole_mib_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_cpus_in_nano_cpus():
    assert parse_cpus("1.5") == 1_500_000_000
    assert parse_cpus(" 4 ") == 4_000_000_000
    for bad in ("0", "-1", "x", "1e", "nan", "inf", "0.0000000001"):
        with pytest.raises(ValueError):
            parse_cpus(bad)


# Produced by the provider's own nanoInt64ToDecimalString (terraform-provider-docker helpers.go),
# compiled and run with Go: it spells CPUs its own way, and rounds some values.
PROVIDER_CPUS = [
    (1_000_000_000, "1.0"), (2_000_000_000, "2.0"), (10_000_000_000, "10."), (100_000_000_000, "100."),
    (1_500_000_000, "1.5"), (500_000_000, "0.5"), (250_000_000, "0.25"), (50_000_000, "0.1"), (10_000_000, "0.0"),
    (1_050_000_000, "1.05"), (10_500_000_000, "10.5"), (95_000_000, "0.095"), (45_000_000, "0.045"), (1, "0.0"),
    (123_456_789, "0.123456789"), (3_100_000_000, "3.1"), (20_500_000_000, "20.5"), (750_000_000, "0.75"),
]


@pytest.mark.parametrize(("nano", "spelled"), PROVIDER_CPUS)
def test_cpus_spelled_as_the_provider_reads_them_back(nano, spelled):
    assert provider_cpus(nano) == spelled


def test_sizes_in_the_providers_mib():
    assert provider_mib(GIB) == 1024
    assert provider_mib(512 * MIB) == 512


def test_ulimits_like_docker_run():
    assert parse_ulimits("memlock=-1,stack=67108864") == (Ulimit("memlock", -1, -1), Ulimit("stack", 67108864, 67108864))
    assert parse_ulimits(" nofile=1024:4096 , ") == (Ulimit("nofile", 1024, 4096),)
    assert str(Ulimit("nofile", 1024, 4096)) == "nofile=1024:4096" and str(Ulimit("memlock", -1, -1)) == "memlock=-1"
    for bad in ("memlock", "bogus=1", "nofile=a", "nofile=10:5", "nofile=-2", "nofile=1,nofile=2", "stack=-1:100"):
        with pytest.raises(ValueError):
            parse_ulimits(bad)


def test_default_resources_give_gpu_stacks_nvidias_ulimits_only():
    cpu, problems = parse_notebook_resources("1g", "", "", "", gpus=False)
    assert not problems and cpu == NotebookResources(shm_bytes=GIB)
    gpu, problems = parse_notebook_resources("1g", "", "", "", gpus=True)
    assert not problems
    assert gpu.ulimits == (Ulimit("memlock", -1, -1), Ulimit("stack", 67108864, 67108864))
    none, problems = parse_notebook_resources("1g", "", "", "none", gpus=True)
    assert not problems and none.ulimits == ()
    assert parse_notebook_resources("", "", "", "", gpus=False)[0].shm_bytes == GIB, "empty shmSize is the default"


def test_resources_problems_name_the_key_and_the_fix():
    _, problems = parse_notebook_resources("64x", "100m", "0.05", "memlock=lots", gpus=False)
    by_key = {p.key: p for p in problems}
    assert set(by_key) == {"shmSize", "notebookMemory", "notebookCpus", "notebookUlimits"}
    assert "too little" in by_key["notebookMemory"].problem
    assert "reads '0.05' back as '0.1'" in by_key["notebookCpus"].problem
    assert all(p.fix for p in problems)


def test_shm_must_fit_inside_the_memory_limit():
    res, problems = parse_notebook_resources("2g", "2g", "", "", gpus=False)
    assert [p.key for p in problems] == ["shmSize"] and "notebookMemory 2g" in problems[0].problem
    res, problems = parse_notebook_resources("1g", "8g", "1.5", "", gpus=False)
    assert not problems and res.memory_bytes == 8 * GIB and res.nano_cpus == 1_500_000_000


def test_every_container_gets_no_new_privileges():
    for h in (notebook_hardening(NotebookResources()), tensorboard_hardening(), gpu_check_hardening()):
        assert NO_NEW_PRIVILEGES in h.security_opts


def test_tensorboard_is_unprivileged_and_read_only():
    h = tensorboard_hardening()
    assert h.user == "65534:65534" and h.read_only and h.cap_drop == ("ALL",)
    assert dict(h.tmpfs)["/tmp"].startswith("rw,noexec,nosuid")


def test_notebook_keeps_what_root_in_a_notebook_needs():
    h = notebook_hardening(NotebookResources(shm_bytes=2 * GIB, memory_bytes=8 * GIB, nano_cpus=2_000_000_000))
    assert h.init is True and h.user is None and not h.read_only
    assert "CAP_NET_RAW" in h.cap_drop and "CAP_DAC_OVERRIDE" not in h.cap_drop and "ALL" not in h.cap_drop
    assert all(c.startswith("CAP_") for c in h.cap_drop), "Docker reads them back with CAP_: any other spelling diffs"
    assert dict(h.log_opts) == {"max-size": "10m", "max-file": "3"}
    assert (h.shm_bytes, h.memory_bytes, h.nano_cpus) == (2 * GIB, 8 * GIB, 2_000_000_000)
