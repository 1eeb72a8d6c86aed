"""tfbox:cullIdleKernels (issue 9 §5): its values, its defaults, and the Jupyter settings it gives."""

from __future__ import annotations

import pytest

from components.model.errors import ConfigError
from components.model.kernels import GPU_DEFAULT, cull_interval, culling_settings, parse_cull_idle
from components.model.parse import parse_config

SALT = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800), (" 10 ", 10), ("off", 0), ("0", 0), ("None", 0)],
)
def test_durations(text, seconds):
    assert parse_cull_idle(text, gpus=True) == seconds


def test_defaults_on_for_gpu_stacks_only():
    assert parse_cull_idle("", gpus=True) == GPU_DEFAULT == 3600
    assert parse_cull_idle("", gpus=False) == 0


@pytest.mark.parametrize("text", ["1 hour", "-5", "5", "1.5h", "h"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_cull_idle(text, gpus=False)


def test_interval_scales_down_with_short_timeouts():
    assert cull_interval(3600) == 300 and cull_interval(10) == 5 and cull_interval(600) == 300
    assert culling_settings(0) == {}


def parse(raw):
    return parse_config({"passwordSalt": SALT, **raw}, stack="dev", password_state="secret")


def test_config_key():
    assert parse({}).cull_idle_kernels == 0
    assert parse({"gpus": "0"}).cull_idle_kernels == 3600
    assert parse({"gpus": "0", "cullIdleKernels": "off"}).cull_idle_kernels == 0
    assert parse({"cullIdleKernels": "10s"}).cull_idle_kernels == 10
    with pytest.raises(ConfigError) as info:
        parse({"cullIdleKernels": "soon"})
    assert any(p.startswith("tfbox:cullIdleKernels: 'soon' is not a duration. Fix:") for p in info.value.problems)
