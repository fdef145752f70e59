"""Names and version of the trace format: what a trace directory holds (stdlib only, so that the
capture side can name things without loading pyarrow). The Arrow schemas are in ``format``."""

from __future__ import annotations

FORMAT_NAME = "trainio-trace"
FORMAT_VERSION = "1.3"
"""1.1 added the manifest's ``host_cpu``; 1.2 the process tree's counters (``tree_io``), the
coverage ``basis``, ``capture_pid``, ``finalize`` and per process ``ended``; 1.3 CPU time and page faults
per event, per-process CPU, the node's CPU topology and storage-byte coverage. Readers tolerate their absence."""
MANIFEST = "manifest.json"
SPOOL_DIR = "spool"
IO_DIR = "io"
EVENTS_DIR = "events"

# Operation names recorded in the ``op`` column.
READ_OPS = ("read", "pread", "readv", "preadv", "fread")
OBJECT_READ_OPS = ("get",)


def major(version: str) -> int:
    return int(str(version).split(".", 1)[0])
