"""`make tls` (scripts/tls.sh) on a cluster stack with tfbox:ingressHost: the certificates it makes name each seat's
Ingress host, so the preview's name check (components.model.ingress) passes them. Run with a stand-in `pulumi` that
answers `config get` from a table and keeps what `config set` is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.model.ingress import cert_dns_names

ROOT = Path(__file__).resolve().parents[2]

FAKE_PULUMI = """#!/usr/bin/env bash
dir=${FAKE_DIR:?}
printf '%s\\n' "$*" >>"$dir/calls"
case "$1 $2" in
  "config get")
    key=$3; [[ $3 == --path ]] && key=$4
    [[ -f "$dir/get/$key" ]] && cat "$dir/get/$key" && exit 0
    exit 1 ;;
  "config set") key=${@: -3:1}; cat >"$dir/set-$key" ;;
esac
exit 0
"""


def run_tls(tmp_path: Path, config: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    (tmp_path / "get").mkdir()
    for key, value in config.items():
        (tmp_path / "get" / key).write_text(value)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "FAKE_DIR": str(tmp_path),
           "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "scripts" / "tls.sh"), "lab"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, check=False, timeout=60)


def test_each_seats_certificate_names_its_ingress_host(tmp_path: Path) -> None:
    seats = [{"name": "ana", "notebookPort": 8801}, {"name": "bo", "notebookPort": 8802, "ingressHost": "bo.gpu.example.org"}]
    done = run_tls(tmp_path, {"tfbox:ingressHost": "lab.example.com", "tfbox:seats": json.dumps(seats)})
    assert done.returncode == 0, done.stderr
    assert "ana.lab.example.com" in cert_dns_names((tmp_path / "set-tfbox:tlsCerts.ana").read_text())
    assert "bo.gpu.example.org" in cert_dns_names((tmp_path / "set-tfbox:tlsCerts.bo").read_text())
    assert "PRIVATE KEY" in (tmp_path / "set-tfbox:tlsKeys.ana").read_text()
    assert "--secret --path tfbox:tlsKeys.ana" in (tmp_path / "calls").read_text()


@pytest.mark.parametrize("host", ["lab.example.com", ""])
def test_a_single_seat_stack_names_the_ingress_host_when_it_has_one(tmp_path: Path, host: str) -> None:
    done = run_tls(tmp_path, {"tfbox:ingressHost": host} if host else {})
    assert done.returncode == 0, done.stderr
    names = cert_dns_names((tmp_path / "set-tfbox:tlsCert").read_text())
    assert "localhost" in names and ("lab.example.com" in names) == bool(host) and "-" not in names
