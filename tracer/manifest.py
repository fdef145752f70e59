"""Run-level facts for ``manifest.json``: host, software, command and environment (secrets redacted)."""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

from trainio import __version__
from trainio.tracefile.hostcpu import cpu_topology
from trainio.tracefile.layout import FORMAT_NAME, FORMAT_VERSION, MANIFEST
from trainio.tracefile.redact import Redactor


def host_facts() -> dict:
    memory = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": memory,
        "cpu": cpu_topology(),
    }


def new_manifest(command: list[str], env: dict[str, str], redactor: Redactor | None = None) -> dict:
    """The manifest of a capture that starts now; ``command`` and ``env`` go through ``redactor``."""
    redactor = redactor or Redactor(env=env)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "tool": "trainio",
        "tool_version": __version__,
        "status": "running",
        "command": redactor.argv(command),
        "redact": sorted(redactor.names),
        "cwd": redactor.text(os.getcwd()),
        "start_time": time.time(),
        "start_monotonic_ns": time.monotonic_ns(),
        "clock": "CLOCK_MONOTONIC nanoseconds, shared by all processes of the run",
        "end_time": None,
        "end_monotonic_ns": None,
        "duration_s": None,
        "exit_code": None,
        "host": host_facts(),
        "python": sys.version.split()[0],
        "env": redactor.env(env),
        "processes": [],
        "lost": [],
    }


def write_manifest(trace_dir: Path, manifest: dict) -> None:
    """Atomic write, so a reader never sees half a manifest."""
    path = trace_dir / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)
