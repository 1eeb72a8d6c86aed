"""What a CI job needs to reach one machine stack: `python -m ops.access STACK` prints `key=value` lines for
`$GITHUB_OUTPUT` (the preview, deploy and drift workflows read them).

A Docker machine is reached over SSH (the environment's SSH key); a stack on a cluster (`tfbox:backend:
kubernetes`) by its kubeconfig, best kept as a secret in its own config (`pulumi config set --secret
kubernetes:kubeconfig < lab.yaml`, so the passphrase alone opens it), and `kubectl` for tfbox's preflight.
A cluster stack needs no SSH key: its job neither loads one nor fails for the lack of one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ops.stacks import StackInfo, machine_stacks

ROOT = Path(__file__).resolve().parent.parent


def needs(info: StackInfo) -> dict[str, str]:
    """backend, ssh (load the SSH key), kubectl (install it): as GitHub step outputs."""
    return {"backend": info.backend, "ssh": str(not info.on_cluster).lower(), "kubectl": str(info.on_cluster).lower()}


SECRET_KUBECONFIG = "kubeconfig in the stack's secrets"


def warnings(info: StackInfo) -> list[str]:
    """What would keep CI from reaching a cluster stack (or leaks its credentials), said before the preview fails on it."""
    if not info.on_cluster or info.cluster == SECRET_KUBECONFIG:
        return []
    fix = f"`pulumi config set --secret kubernetes:kubeconfig --stack {info.name} < <kubeconfig file>`"
    if info.cluster == "kubeconfig in the stack file":
        return [f"{info.name}: kubernetes:kubeconfig is in the stack file in plaintext, credentials included: {fix}"]
    given = info.cluster or "KUBECONFIG"
    return [f"{info.name}: the cluster is reached through {given}, which a CI runner does not have: {fix}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in machine_stacks(args.root)}
    info = by_name.get(args.stack)
    if info is None:
        print(f"access: {args.stack} is not a machine stack here (Pulumi.{args.stack}.yaml, not tfbox:stackKind: local)",
              file=sys.stderr)
        return 2
    for line in warnings(info):
        print(f"::warning title=cluster access::{line}", file=sys.stderr)
    for key, value in needs(info).items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
