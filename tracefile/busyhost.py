"""Was the capture's host busy with other work? A trace captured under others' CPU load carries
inflated per-sample CPU times (decode, transforms) into every projection made from it."""

from __future__ import annotations

BUSY_HOST_FRACTION = 0.10
"""Share of the host's usable CPU taken by processes outside the traced command above which a trace warns."""


def is_busy(host_cpu: dict) -> bool:
    """True when the manifest's ``host_cpu`` says others took more than BUSY_HOST_FRACTION."""
    fraction = host_cpu.get("other_fraction")
    return isinstance(fraction, int | float) and fraction > BUSY_HOST_FRACTION


def busy_host_warning(manifest: dict) -> str | None:
    """One line when the capture's host was busy with others' work; None when it was quiet.

    Traces without ``host_cpu`` (format 1.0, or finalized after a kill) give None.
    """
    load = manifest.get("host_cpu")
    if load is None:
        return None
    if not isinstance(load, dict) or not isinstance(load.get("other_fraction"), int | float):
        return f"manifest host_cpu is malformed ({load!r}): the host's CPU load during the capture is unknown"
    if not is_busy(load):
        return None
    return (
        f"busy host: other processes used {load['other_fraction']:.0%} of the {load.get('cpus')} usable cores"
        f" during the capture ({load.get('other_cpu_s')} CPU-s in {load.get('window_s')} s, above"
        f" {BUSY_HOST_FRACTION:.0%}); per-sample CPU times may be inflated; recapture on a quiet machine"
    )
