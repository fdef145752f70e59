"""Quantities with units, as written in profiles and on the command line: the parsers and their
inverses, the formatters.

Every parser returns SI base units: bytes, seconds, bytes per second, operations per second.
``key`` names where the value came from, so that the error can say so. Each formatter writes a
string its parser reads back (to the digits it keeps).
"""

from __future__ import annotations

import math
import re


class UnitError(ValueError):
    """A quantity that does not parse, or carries the wrong kind of unit."""


_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s\d].*?)?\s*$")
_UNLIMITED = {"inf", "unlimited"}

_SIZE = {
    "": 1,
    "B": 1,
    "kB": 1e3,
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
_DURATION = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
}
# Bit rates (network gear is sold in bits) are converted to bytes here.
_BANDWIDTH = {f"{unit}/s": factor for unit, factor in _SIZE.items() if unit}
_BANDWIDTH.update(
    {
        f"{prefix}{bits}": scale / 8
        for prefix, scale in (("K", 1e3), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12))
        for bits in ("bit/s", "b/s", "bps")
    }
)
_RATE = {
    "IOPS": 1.0,
    "kIOPS": 1e3,
    "/s": 1.0,
    "ops/s": 1.0,
    "op/s": 1.0,
    "Hz": 1.0,
}

_LIMITS = {
    "size": (1e24, "1 YB"),
    "duration": (86400.0, "one day"),
    "bandwidth": (1e18, "1 EB/s"),
    "rate": (1e18, "1e18 IOPS"),
}
"""Finite values beyond these are typing slips, not storage: refused ('unlimited' says no limit)."""

_EXAMPLES = {
    "size": "'4KiB', '256MiB' or a plain number of bytes",
    "duration": "'0.08 ms', '2us' or '1.5 s'",
    "bandwidth": "'2 GB/s', '500MiB/s' or '25 Gbit/s'",
    "rate": "'20000 IOPS' or '1e5/s'",
}


def _where(key: str | None, text: object) -> str:
    return f"{key}(={text!r})" if key else repr(text)


def _parse(text: object, table: dict[str, float], kind: str, key: str | None) -> float:
    if isinstance(text, bool):
        raise UnitError(f"{_where(key, text)}: expected a {kind} such as {_EXAMPLES[kind]}")
    if isinstance(text, (int, float)):
        if "" not in table:
            raise UnitError(f"{_where(key, text)}: a {kind} needs a unit, such as {_EXAMPLES[kind]}")
        value = float(text)
    else:
        if not isinstance(text, str):
            raise UnitError(f"{_where(key, text)}: expected a {kind} such as {_EXAMPLES[kind]}")
        if text.strip().lower() in _UNLIMITED:
            return math.inf
        match = _NUMBER.match(text)
        if match is None:
            raise UnitError(f"{_where(key, text)}: not a {kind}; expected e.g. {_EXAMPLES[kind]}")
        unit = match.group(2) or ""
        if unit not in table:
            raise UnitError(
                f"{_where(key, text)}: unit {unit or '(none)'!r} is not a {kind} unit; expected e.g. {_EXAMPLES[kind]}"
            )
        value = float(match.group(1)) * table[unit]
    if value < 0 or math.isnan(value):
        raise UnitError(f"{_where(key, text)}: a {kind} must be >= 0")
    limit, spelled = _LIMITS[kind]
    if value > limit:
        raise UnitError(
            f"{_where(key, text)}: a {kind} above {spelled} is beyond any storage; write 'unlimited' for none"
        )
    return value


def parse_size(text: object, key: str | None = None) -> float:
    """Bytes; a plain number is bytes. ``inf`` is allowed (unlimited memory, say)."""
    return _parse(text, _SIZE, "size", key)


def parse_duration(text: object, key: str | None = None) -> float:
    """Seconds."""
    return _parse(text, _DURATION, "duration", key)


def parse_bandwidth(text: object, key: str | None = None) -> float:
    """Bytes per second; bit rates (``25 Gbit/s``, ``25Gb/s``) are divided by 8."""
    return _parse(text, _BANDWIDTH, "bandwidth", key)


def parse_rate(text: object, key: str | None = None) -> float:
    """Operations per second."""
    return _parse(text, _RATE, "rate", key)


def format_size(nbytes: float) -> str:
    """The shortest exact binary or decimal spelling, for labels such as ``shards:256MiB``."""
    if math.isinf(nbytes):
        return "unlimited"
    for unit in ("TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "kB"):
        scaled = nbytes / _SIZE[unit]
        if scaled >= 1 and scaled == int(scaled):
            return f"{int(scaled)}{unit}"
    return f"{int(nbytes)}B"


def _number(value: float) -> str:
    text = f"{value:.4g}"
    return f"{value:.0f}" if "e" in text else text


def bytes_text(nbytes: float) -> str:
    """A size to read at a glance, in decimal units to one decimal (``"7.0 MB"``; :func:`parse_size`)."""
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000:
            return f"{int(nbytes)} B" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


def duration_text(seconds: float) -> str:
    """A duration to four digits (``"0.237 ms"``; :func:`parse_duration`)."""
    if seconds < 1e-3:
        return f"{_number(seconds * 1e6)} us"
    if seconds < 1:
        return f"{_number(seconds * 1e3)} ms"
    return f"{_number(seconds)} s"


def bandwidth_text(bytes_per_s: float) -> str:
    """A bandwidth to four digits (``"512.3 MiB/s"``, ``"2.4 GiB/s"``, ``"unlimited"``; :func:`parse_bandwidth`)."""
    if math.isinf(bytes_per_s):
        return "unlimited"
    if bytes_per_s >= 2**30:
        return f"{_number(bytes_per_s / 2**30)} GiB/s"
    if bytes_per_s >= 2**20:
        return f"{_number(bytes_per_s / 2**20)} MiB/s"
    return f"{_number(bytes_per_s / 2**10)} KiB/s"


def rate_text(ops_per_s: float) -> str:
    """A request rate in whole operations per second, at least 1 (``"4400 IOPS"``; :func:`parse_rate`)."""
    return "unlimited" if math.isinf(ops_per_s) else f"{max(1, round(ops_per_s))} IOPS"
