"""Rows for ``replay backends``: the built-in storage profiles at a glance.

Values are plain numbers in display units (MB = 1e6 bytes, milliseconds); ``math.inf`` means
unlimited and ``None`` means the key does not apply to that backend or is not known (no open on
an object store, no client link to a node-local disk, no write bandwidth of a shared store).
Rendering is the caller's business.
"""

from __future__ import annotations

from trainio.models.backend import BackendProfile, builtin_names, builtin_profile


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _mbps(bandwidth: float | None) -> float | None:
    return None if bandwidth is None else bandwidth / 1e6


def backend_row(profile: BackendProfile) -> dict[str, object]:
    """One profile's key numbers."""
    return {
        "name": profile.name,
        "kind": profile.access,
        "shared": profile.shared,
        "page_cache": profile.page_cache,
        "open_ms": _ms(profile.open_latency_s),
        "request_latency_ms": _ms(profile.request_latency_s),
        "request_cpu_ms": _ms(profile.node_cpu_per_request_s),
        "stream_MBps": _mbps(profile.stream_bandwidth),
        "aggregate_MBps": _mbps(profile.aggregate_bandwidth),
        "iops": profile.iops,
        "client_MBps": _mbps(profile.client_nic_bandwidth),
        "write_MBps": _mbps(profile.write_bandwidth),
        "local_capacity_GB": None if profile.local_capacity_bytes is None else profile.local_capacity_bytes / 1e9,
        "description": profile.description,
        "source": profile.source,
    }


def backend_rows() -> list[dict[str, object]]:
    """A row per built-in profile, by name."""
    return [backend_row(builtin_profile(name)) for name in builtin_names()]
