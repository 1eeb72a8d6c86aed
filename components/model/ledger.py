"""The GPU ledger: which seat owns which GPU, and the claims that cannot both be true.

One GPU belongs to one seat, unless every seat on it opted in to sharing (`shareGpus: true`).
Claims come from this stack's seats and, fed by the caller, from other stacks on the same
Docker host (committed stack files, or the live host's containers read by whoever can see
them). An index and a UUID name the same GPU when an `nvidia-smi -L` listing (the GPU check's
output) says so; without one they can only be compared as written.

Plain Python: no Pulumi, no Docker (a Kubernetes backend reads the same ledger).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from components.model.gpus import GpuSpec, ListedGpu

ALL = "*"  # the key of an `all` claim when no listing says which GPUs that is


@dataclass(frozen=True)
class Claim:
    """GPUs one seat (or a single-seat lab, seat "") asks for."""

    stack: str
    seat: str
    gpus: GpuSpec
    shared: bool = False
    key: str = ""  # the config key to name in messages, e.g. `tfbox:seats[1].gpus`

    def who(self, this_stack: str | None = None) -> str:
        """`seat 'a'`, `stack 'x' seat 'a'`, or `stack 'x'` for a single-seat lab."""
        if self.stack == this_stack or this_stack is None:
            return f"seat '{self.seat}'" if self.seat else f"stack '{self.stack}'"
        return f"stack '{self.stack}' seat '{self.seat}'" if self.seat else f"stack '{self.stack}'"


@dataclass(frozen=True)
class LedgerGpu:
    """One GPU as far as it is known: the key it is compared by, and how to name it."""

    key: str  # lower-case UUID when known, else `index:N` / the UUID as written, or ALL
    index: int | None = None
    uuid: str | None = None
    model: str | None = None

    def describe(self) -> str:
        if self.key == ALL:
            return "every GPU (all)"
        parts = [f"GPU {self.index}" if self.index is not None else f"GPU {self.uuid}"]
        if self.index is not None and self.uuid:
            parts.append(f"({self.uuid})")
        return " ".join(parts)


def resolve(device: str, listing: Sequence[ListedGpu] | None) -> LedgerGpu:
    """An index or UUID as written in config, as the GPU it is (per the listing when there is one)."""
    if listing:
        for gpu in listing:
            if (device.isdigit() and int(device) == gpu.index) or device.lower() == gpu.uuid.lower():
                return LedgerGpu(gpu.uuid.lower(), gpu.index, gpu.uuid, gpu.name)
    if device.isdigit():
        return LedgerGpu(f"index:{int(device)}", index=int(device))
    return LedgerGpu(device.lower(), uuid=device)


def claimed_gpus(claim: Claim, listing: Sequence[ListedGpu] | None) -> list[LedgerGpu]:
    """The GPUs a claim takes; `all` is every listed GPU (or the ALL wildcard), count=N Docker's first N."""
    spec = claim.gpus
    if spec.kind == "none":
        return []
    if spec.kind == "all":
        if listing:
            return [LedgerGpu(g.uuid.lower(), g.index, g.uuid, g.name) for g in listing]
        return [LedgerGpu(ALL)]
    if spec.kind == "count":  # Docker hands out GPUs 0..N-1 for --gpus N
        return [resolve(str(i), listing) for i in range(spec.count)]
    return [resolve(d, listing) for d in spec.devices]


def _overlap(a: list[LedgerGpu], b: list[LedgerGpu]) -> list[LedgerGpu]:
    if any(g.key == ALL for g in a):
        return list(b)
    if any(g.key == ALL for g in b):
        return list(a)
    keys = {g.key for g in b}
    return [g for g in a if g.key in keys]


SHARE_FIX = ("give each seat GPUs of its own (indices such as 0 and 1, or UUIDs), or set shareGpus: true on "
             "both seats to share them (each TensorFlow kernel then allocates GPU memory as it grows)")


def ledger_problems(mine: Sequence[Claim], others: Iterable[Claim] = (), listing: Sequence[ListedGpu] | None = None) -> list[str]:
    """Every conflict of this stack's claims among themselves and with other stacks' claims.

    A GPU taken by two claims is a conflict unless both are shared. Multi-seat GPU stacks must
    name their GPUs: `count=N` is Docker's GPUs 0..N-1, which the user should write as such.
    A listed index that the machine does not have is reported when a listing is known.
    """
    problems: list[str] = []
    gpu_seats = [c for c in mine if c.gpus.requested]
    if len(gpu_seats) > 1:
        for c in gpu_seats:
            if c.gpus.kind == "count":
                first = ",".join(str(i) for i in range(c.gpus.count))
                problems.append(f"{c.key or 'tfbox:seats'}: {c.who()} asks for count={c.gpus.count}, which Docker "
                                f"gives as GPUs {first}; the ledger needs them named when several seats have GPUs. "
                                f"Fix: write gpus: \"{first}\" (or the GPUs' UUIDs)")
    if listing:
        for c in gpu_seats:
            problems += absent_gpu_problems(c, listing)
    taken = {id(c): claimed_gpus(c, listing) for c in gpu_seats}
    for i, a in enumerate(gpu_seats):
        for b in gpu_seats[i + 1:]:
            both = _overlap(taken[id(a)], taken[id(b)])
            if both and not (a.shared and b.shared):
                names = ", ".join(g.describe() for g in both)
                problems.append(f"{b.key or 'tfbox:seats'}: {a.who()} and {b.who()} both ask for {names}. Fix: {SHARE_FIX}")
    this_stack = mine[0].stack if mine else None
    for other in others:
        if not other.gpus.requested or other.stack == this_stack:
            continue
        theirs = claimed_gpus(other, listing)
        for c in gpu_seats:
            both = _overlap(taken[id(c)], theirs)
            if both and not (c.shared and other.shared):
                names = ", ".join(g.describe() for g in both)
                share = ", or set shareGpus: true on both seats to share them" if c.seat and other.seat else ""
                problems.append(f"{c.key or 'tfbox:gpus'}: {c.who()} asks for {names}, which {other.who(this_stack)} on the "
                                f"same Docker host already has. Fix: pick other GPUs{share}")
    return problems


def listed(listing: Sequence[ListedGpu]) -> str:
    """The machine's GPUs as a user reads them: `GPU 0 (NVIDIA H200, GPU-…)`, …"""
    return ", ".join(f"GPU {g.index} ({g.name}, {g.uuid})" for g in sorted(listing, key=lambda g: g.index))


def config_set_command(key: str, value: str) -> str:
    """The `pulumi config set` line that sets `key` (`tfbox:gpus`, or a seat's `tfbox:seats[1].gpus`)."""
    return f"pulumi config set --path '{key}' {value}" if "[" in key else f"pulumi config set {key} {value}"


def absent_gpu_problems(claim: Claim, listing: Sequence[ListedGpu]) -> list[str]:
    """GPUs a claim names that the machine's `nvidia-smi -L` does not list: one problem naming the key, what the
    machine has and the fix. Why before anything is created: NVIDIA's runtime in CDI mode (a current GPU host)
    refuses such a container when it is created, with Docker's words only (`unresolvable CDI devices nvidia.com/gpu=7`).
    A MIG device (`MIG-…`) is not in the listing's GPU lines and is left to the GPU check."""
    if not listing or not claim.gpus.requested:
        return []
    missing = [("GPU " + str(g.index)) if g.index is not None else str(g.uuid) for g in claimed_gpus(claim, listing)
               if g.key != ALL and (g.key.startswith("index:") or (g.index is None and str(g.uuid).upper().startswith("GPU-")))]
    if not missing:
        return []
    key = claim.key or "tfbox:gpus"
    first = min(listing, key=lambda g: g.index)
    return [f"{key}: {claim.who()} asks for {', '.join(missing)}, which this machine does not have: its nvidia-smi -L "
            f"lists {listed(listing)}. Fix: name GPUs it lists, by index or UUID, e.g. "
            f"`{config_set_command(key, str(first.index))}` (or `all`), or run the stack on the machine that has "
            f"{'them' if len(missing) > 1 else 'it'}"]


def ledger_table(claims: Sequence[Claim], listing: Sequence[ListedGpu] | None = None) -> dict[str, dict[str, object]]:
    """The `gpuLedger` output: GPU (index when known, else as written) -> its index, UUID, model and seats."""
    rows: dict[str, dict[str, object]] = {}
    for claim in claims:
        for gpu in claimed_gpus(claim, listing):
            name = "all" if gpu.key == ALL else (str(gpu.index) if gpu.index is not None else str(gpu.uuid))
            row = rows.setdefault(name, {"index": gpu.index, "uuid": gpu.uuid, "model": gpu.model, "seats": []})
            seats = row["seats"]
            assert isinstance(seats, list)
            seats.append(claim.seat or claim.stack)
    return dict(sorted(rows.items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0, kv[0])))
