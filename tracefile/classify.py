"""Which reads are training data and which are the runtime (interpreter, libraries, system files).

The rule is deliberately simple and documented in docs/trace-format.md: a path is *runtime* when it
lies under a system or Python installation prefix, or is code or a shared library; pipes and
sockets are *ipc*; the trace's own files are *trace*; everything else read by the run is *data*.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

SYSTEM_PREFIXES = (
    "/proc/",
    "/sys/",
    "/dev/",
    "/etc/",
    "/usr/",
    "/lib/",
    "/lib64/",
    "/bin/",
    "/sbin/",
    "/run/",
    "/var/lib/",
    "/opt/conda/",
)
RUNTIME_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pth", ".dist-info", ".egg-link", ".typed")
RUNTIME_PARTS = ("/site-packages/", "/dist-packages/", "/__pycache__/", "/.pyenv/", "/lib/python3")
# Per-user caches of compilers and runtimes (CUDA's JIT cache, Triton, pip, torch hub).
CACHE_PARTS = ("/.cache/", "/.nv/", "/.triton/", "/.local/", "/.config/")
IPC_PREFIXES = ("pipe:", "socket:", "anon_inode:")


class Classifier:
    """Classifies the paths of one trace: ``classifier(path, kind)`` is one of ``data``, ``runtime``,
    ``ipc``, ``trace``.

    ``prefixes``: the traced interpreters' installation prefixes. ``home``: the run's $HOME, whose
    hidden folders (``~/.keras``, ``~/.config``) hold per-user configuration and caches, never data.
    """

    def __init__(self, trace_dir: str, prefixes: Iterable[str] = (), home: str | None = None) -> None:
        self.trace_dir = trace_dir.rstrip("/")
        runtime = list(SYSTEM_PREFIXES) + [p.rstrip("/") + "/" for p in prefixes if p]
        if home and home.rstrip("/"):
            runtime.append(home.rstrip("/") + "/.")
        self.runtime_prefixes = tuple(runtime)
        self.runtime_parts = re.compile("|".join(re.escape(part) for part in RUNTIME_PARTS + CACHE_PARTS))

    def __call__(self, path: str | None, kind: str) -> str:
        if kind == "object":
            return "data"
        if kind == "ipc" or (path is not None and path.startswith(IPC_PREFIXES)):
            return "ipc"
        if not path or kind == "other":
            return "runtime"
        if path == self.trace_dir or path.startswith(self.trace_dir + "/"):
            return "trace"
        if path.startswith(self.runtime_prefixes) or path.endswith(RUNTIME_SUFFIXES):
            return "runtime"
        if self.runtime_parts.search(path):
            return "runtime"
        return "data"


def classify_path(
    path: str | None, kind: str, trace_dir: str, prefixes: Iterable[str] = (), home: str | None = None
) -> str:
    """One path's class (see Classifier); build a Classifier once for many paths."""
    return Classifier(trace_dir, prefixes, home)(path, kind)


def data_roots(paths_bytes: dict[str, int]) -> list[str]:
    """The directories (or ``s3://bucket``) the data came from, most bytes first.

    Sibling directories under one parent (``train/cls_0``, ``train/cls_1``) collapse into the parent,
    but never into a top-level directory such as ``/tmp`` that unrelated data sets share.
    """
    dirs: dict[str, int] = {}
    for path, nbytes in paths_bytes.items():
        parent = path.rsplit("/", 1)[0] if "/" in path else path
        if path.startswith("s3://"):
            parent = "s3://" + path[5:].split("/", 1)[0]
        dirs[parent] = dirs.get(parent, 0) + nbytes
    changed = True
    while changed:
        changed = False
        by_parent: dict[str, list[str]] = {}
        for d in dirs:
            if d.startswith("s3://"):
                continue
            parent = os.path.dirname(d)
            if parent.count("/") >= 2 or (
                parent.count("/") == 1
                and parent not in ("/", "/tmp", "/home", "/mnt", "/data", "/root", "/var", "/work")
            ):
                by_parent.setdefault(parent, []).append(d)
        for parent, children in by_parent.items():
            if len(children) >= 2:
                dirs[parent] = dirs.get(parent, 0) + sum(dirs.pop(c) for c in children)
                changed = True
                break
    # Drop roots nested in another root.
    roots = sorted(dirs, key=len)
    kept: dict[str, int] = {}
    for root in roots:
        outer = next((k for k in kept if root.startswith(k.rstrip("/") + "/")), None)
        if outer is None:
            kept[root] = dirs[root]
        else:
            kept[outer] += dirs[root]
    return sorted(kept, key=lambda r: -kept[r])
