"""Was the capture's host busy with other work? A trace captured under others' CPU load carries
inflated per-sample CPU times (decode, transforms) into every projection made from it.

Strangers (a compile, another job) are noise to capture again without. Storage daemons on the
same host (co-located Ceph, an NFS server, a FUSE client) may be serving the run's own reads: their
CPU is what co-located storage costs, and capturing again elsewhere would not remove it.
"""

from __future__ import annotations

BUSY_HOST_FRACTION = 0.10
"""Share of the host's usable CPU taken by processes outside the traced command above which a trace warns."""


def _stranger_fraction(host_cpu: dict) -> object:
    """Others' share less the storage daemons' (traces before format 1.3 did not tell them apart)."""
    return host_cpu.get("stranger_fraction", host_cpu.get("other_fraction"))


def is_busy(host_cpu: dict) -> bool:
    """True when processes other than the command and the host's storage daemons took more than
    BUSY_HOST_FRACTION of the usable cores."""
    fraction = _stranger_fraction(host_cpu)
    return isinstance(fraction, int | float) and fraction > BUSY_HOST_FRACTION


def storage_fraction(host_cpu: dict) -> float:
    """Share of the usable cores the host's storage daemons took during the capture (0 when unknown)."""
    window, cpus, storage = host_cpu.get("window_s"), host_cpu.get("cpus"), host_cpu.get("storage_cpu_s")
    if not all(isinstance(v, int | float) and v > 0 for v in (window, cpus, storage)):
        return 0.0
    return min(storage / (cpus * window), 1.0)  # type: ignore[operator]


def busy_host_warning(manifest: dict) -> str | None:
    """One line when the capture's host was busy with others' work; None when it was quiet.

    Traces without ``host_cpu`` (format 1.0, or finalized after a kill) give None.
    """
    load = manifest.get("host_cpu")
    if load is None:
        return None
    if not isinstance(load, dict) or not isinstance(_stranger_fraction(load), int | float):
        return f"manifest host_cpu is malformed ({load!r}): the host's CPU load during the capture is unknown"
    if is_busy(load):
        return (
            f"busy host: other processes used {_stranger_fraction(load):.0%} of the {load.get('cpus')} usable"
            f" cores during the capture ({load.get('stranger_cpu_s', load.get('other_cpu_s'))} CPU-s in"
            f" {load.get('window_s')} s, above {BUSY_HOST_FRACTION:.0%}, storage daemons not counted);"
            " per-sample CPU times may be inflated; recapture on a quiet machine"
        )
    share = storage_fraction(load)
    if share > BUSY_HOST_FRACTION:
        daemons = ", ".join(f"{name} x{count}" for name, count in (load.get("storage_daemons") or {}).items())
        return (
            f"co-located storage: storage daemons on this host ({daemons}) used {share:.0%} of the"
            f" {load.get('cpus')} usable cores during the capture ({load.get('storage_cpu_s')} CPU-s): when they"
            " served this run's reads, per-sample CPU times include that contention, as on any node that hosts"
            " its storage; a projection onto storage elsewhere does not remove it"
        )
    return None
