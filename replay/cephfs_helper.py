"""Replay a trace's file reads on CephFS through libcephfs; stat and write RADOS objects for ``rados:`` targets.

Run by Debian's ``/usr/bin/python3`` (the only interpreter that can import the ``python3-cephfs``
and ``python3-rados`` bindings), so this file uses the standard library and those two modules only
(``cephfs`` is built on ``rados``); it imports nothing from trainio. ``replay/fioreplay.py`` writes
the plan and reads the result; see its docstring for why CephFS is not replayed with fio.

    /usr/bin/python3 replay/cephfs_helper.py cephfs PLAN.json     (PLAN.json or - for stdin)
    /usr/bin/python3 replay/cephfs_helper.py rados PLAN.json

``cephfs`` plan: ``conf`` (ceph.conf path), ``root`` (a folder inside the file system), ``files``
(relative path -> size in bytes), ``seed``, ``no_stall`` and ``processes``: a list of
``{"name", "node", "start_delay_us", "ops": [[relative path, op, offset, length, timestamp_us], ...]}``
with op ``open``, ``read`` or ``close`` and timestamps in microseconds since the process's start.
Files that are missing under ``root`` or have another size are written first (random bytes
drawn from the seed and the path). Then every process replays in its own thread, all at once
after one barrier: a process starts ``start_delay_us`` after the barrier and issues each op the
timestamp gap after its previous op's issue, or at once when the previous op ran past that
(fio's iolog pacing); with ``no_stall`` no process waits. Each node (``node``) has its own
libcephfs mount, as each node of a cluster has its own client. The result, on stdout as JSON:
``bytes``, ``ops`` (reads), ``duration_s`` (barrier to the last op's end), ``latency_ms`` per op
(``count``, ``mean``, ``p50``, ``p99``, ``max``), ``errors`` (failed ops and short reads),
``error_messages`` (the first 20), ``layout`` (files, written, bytes_written) and per process
``bytes``, ``ops``, ``errors``, ``duration_s``.

``rados`` plan: ``conf``, ``pool``, ``objects`` (object name -> size), ``seed`` and ``write``.
Every object is stat'ed; with ``write`` a missing or wrongly sized object is written (in 8 MiB
pieces, every write checked). The result: ``objects``, ``ok`` (present with the right size after
the run), ``written``, ``bytes_written``, ``bad`` (the first 20 ``[name, expected, found]``,
found -1 when missing).

Exit status: 0 done (the result may still count errors), 2 bad plan, 3 cannot connect to Ceph,
4 the Ceph bindings cannot be imported, 1 any other failure; the reason is one line on stderr.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time

CHUNK = 8 * 2**20
MOUNT_TIMEOUT_S = "10"
MAX_MESSAGES = 20
EXIT_BAD_PLAN, EXIT_CONNECT, EXIT_IMPORT = 2, 3, 4


class HelperError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _load_plan(source: str) -> dict:
    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
        plan = json.loads(text)
    except (OSError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"cannot read plan {source}: {exc}") from exc
    if not isinstance(plan, dict):
        raise HelperError(EXIT_BAD_PLAN, f"plan {source} is not a JSON object")
    return plan


def _random_bytes(seed: int, name: str, size: int):
    """The bytes of one file or object, in pieces: reproducible from the seed and the name."""
    rng = random.Random(f"{seed}:{name}")
    for start in range(0, size, CHUNK):
        yield start, rng.randbytes(min(CHUNK, size - start))


def _summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:  # nearest-rank percentile
        return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]

    return {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": rank(50),
        "p99": rank(99),
        "max": ordered[-1],
    }


# ---------------------------------------------------------------------------------------- CephFS


def _mount(cephfs, conf: str):
    fs = cephfs.LibCephFS(conffile=conf)
    try:
        fs.conf_set("client_mount_timeout", MOUNT_TIMEOUT_S)
        fs.mount()
    except cephfs.Error as exc:
        raise HelperError(EXIT_CONNECT, f"cannot mount CephFS with {conf}: {exc}") from exc
    return fs


def _join(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel


def _layout(cephfs, fs, root: str, files: dict, seed: int) -> dict:
    written = bytes_written = 0
    for rel in sorted(files):
        size, path = int(files[rel]), _join(root, rel)
        try:
            if fs.stat(path).st_size == size:
                continue
        except cephfs.ObjectNotFound:
            pass
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.mkdirs(parent, 0o755)
        fd = fs.open(path, "w", 0o644)
        try:
            for start, data in _random_bytes(seed, rel, size):
                done = fs.write(fd, data, start)
                if done != len(data):
                    raise HelperError(1, f"short write to {path}: {done} of {len(data)} bytes at {start}")
        finally:
            fs.close(fd)
        written += 1
        bytes_written += size
    return {"files": len(files), "written": written, "bytes_written": bytes_written}


class _Process(threading.Thread):
    """One traced process (or its share on one node) replayed against one mount."""

    def __init__(self, cephfs, fs, root: str, spec: dict, no_stall: bool, barrier: threading.Barrier) -> None:
        super().__init__(name=spec["name"], daemon=True)
        self.cephfs, self.fs, self.root, self.spec = cephfs, fs, root, spec
        self.no_stall, self.barrier = no_stall, barrier
        self.bytes = self.ops = self.errors = 0
        self.latency: dict[str, list[float]] = {}
        self.messages: list[str] = []
        self.t0 = self.end = 0.0

    def _fail(self, message: str) -> None:
        self.errors += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(f"{self.name}: {message}")

    def run(self) -> None:
        self.barrier.wait()
        self.t0 = time.monotonic()
        issue = self.t0 + (0 if self.no_stall else int(self.spec.get("start_delay_us", 0)) / 1e6)
        previous_us = 0
        fds: dict[str, int] = {}
        for rel, op, offset, length, stamp_us in self.spec["ops"]:
            if not self.no_stall:
                issue += max(0, stamp_us - previous_us) / 1e6
                previous_us = stamp_us
                wait = issue - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    issue = time.monotonic()
            else:
                issue = time.monotonic()
            self._op(fds, rel, op, int(offset), int(length))
        for rel, fd in fds.items():
            self._call("close", rel, lambda fd=fd: self.fs.close(fd))
        self.end = time.monotonic()

    def _call(self, op: str, rel: str, fn):
        start = time.monotonic()
        try:
            value = fn()
        except self.cephfs.Error as exc:
            self._fail(f"{op} {rel}: {exc}")
            return None
        finally:
            self.latency.setdefault(op, []).append((time.monotonic() - start) * 1000)
        return value

    def _op(self, fds: dict, rel: str, op: str, offset: int, length: int) -> None:
        path = _join(self.root, rel)
        if op == "open":
            if rel not in fds:
                fd = self._call("open", rel, lambda: self.fs.open(path, "r"))
                if fd is not None:
                    fds[rel] = fd
        elif op == "close":
            fd = fds.pop(rel, None)
            if fd is not None:
                self._call("close", rel, lambda: self.fs.close(fd))
        elif op == "read":
            if rel not in fds:
                self._fail(f"read {rel} at {offset}: the file is not open (its open failed)")
                self.ops += 1
                return
            data = self._call("read", rel, lambda: self.fs.read(fds[rel], offset, length))
            self.ops += 1
            if data is not None:
                self.bytes += len(data)
                if len(data) != length:
                    self._fail(f"short read {rel} at {offset}: {len(data)} of {length} bytes")
        else:
            self._fail(f"unknown op {op!r} on {rel}")


def replay_cephfs(plan: dict) -> dict:
    try:
        import cephfs
    except ImportError as exc:
        raise HelperError(EXIT_IMPORT, f"{sys.executable} cannot import the cephfs binding: {exc}") from exc
    try:
        conf, root, files, processes = plan["conf"], plan["root"], plan["files"], plan["processes"]
        no_stall, seed = bool(plan.get("no_stall", False)), int(plan.get("seed", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc
    if not str(root).startswith("/"):
        raise HelperError(EXIT_BAD_PLAN, f"root(={root!r}) must be an absolute path inside the file system")
    mounts = {}
    try:
        layout_fs = mounts.setdefault(None, _mount(cephfs, conf))
        layout = _layout(cephfs, layout_fs, root, files, seed)
        for spec in processes:
            if spec.get("node") not in mounts:
                mounts[spec.get("node")] = _mount(cephfs, conf)
        barrier = threading.Barrier(len(processes) + 1)
        threads = [_Process(cephfs, mounts[spec.get("node")], root, spec, no_stall, barrier) for spec in processes]
        for thread in threads:
            thread.start()
        barrier.wait()
        t0 = time.monotonic()
        for thread in threads:
            thread.join()
        end = max((t.end for t in threads), default=t0)
    finally:
        for fs in mounts.values():
            fs.shutdown()
    latency: dict[str, list[float]] = {}
    for thread in threads:
        for op, values in thread.latency.items():
            latency.setdefault(op, []).extend(values)
    return {
        "bytes": sum(t.bytes for t in threads),
        "ops": sum(t.ops for t in threads),
        "duration_s": end - t0,
        "latency_ms": {op: _summary(values) for op, values in sorted(latency.items())},
        "errors": sum(t.errors for t in threads),
        "error_messages": [m for t in threads for m in t.messages][:MAX_MESSAGES],
        "layout": layout,
        "processes": [
            {"name": t.name, "bytes": t.bytes, "ops": t.ops, "errors": t.errors, "duration_s": t.end - t.t0}
            for t in threads
        ],
    }


# ----------------------------------------------------------------------------------------- RADOS


def rados_objects(plan: dict) -> dict:
    try:
        import rados
    except ImportError as exc:
        raise HelperError(EXIT_IMPORT, f"{sys.executable} cannot import the rados binding: {exc}") from exc
    try:
        conf, pool, objects = plan["conf"], plan["pool"], plan["objects"]
        write, seed = bool(plan.get("write", False)), int(plan.get("seed", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc
    cluster = rados.Rados(conffile=conf)
    try:
        cluster.conf_set("client_mount_timeout", MOUNT_TIMEOUT_S)
        cluster.connect(timeout=int(MOUNT_TIMEOUT_S))
    except rados.Error as exc:
        raise HelperError(EXIT_CONNECT, f"cannot connect to Ceph with {conf}: {exc}") from exc
    try:
        try:
            ioctx = cluster.open_ioctx(pool)
        except rados.ObjectNotFound as exc:
            raise HelperError(1, f"rados pool {pool!r} does not exist") from exc
        ok = written = bytes_written = 0
        bad = []
        try:
            for name in sorted(objects):
                size = int(objects[name])
                try:
                    found = ioctx.stat(name)[0]
                except rados.ObjectNotFound:
                    found = -1
                if found != size and write:
                    if found >= 0:
                        ioctx.remove_object(name)
                    for start, data in _random_bytes(seed, name, size):
                        ioctx.write(name, data, start)  # raises on failure, e.g. past osd_max_object_size
                    if size == 0:
                        ioctx.write_full(name, b"")
                    written += 1
                    bytes_written += size
                    found = ioctx.stat(name)[0]
                if found == size:
                    ok += 1
                elif len(bad) < MAX_MESSAGES:
                    bad.append([name, size, found])
        except rados.Error as exc:
            raise HelperError(1, f"rados pool {pool!r}: {exc}") from exc
        finally:
            ioctx.close()
    finally:
        cluster.shutdown()
    return {"objects": len(objects), "ok": ok, "written": written, "bytes_written": bytes_written, "bad": bad}


COMMANDS = {"cephfs": replay_cephfs, "rados": rados_objects}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        print(f"usage: {sys.argv[0]} {{{','.join(COMMANDS)}}} PLAN.json|-", file=sys.stderr)
        return EXIT_BAD_PLAN
    try:
        result = COMMANDS[argv[0]](_load_plan(argv[1]))
    except HelperError as exc:
        print(f"cephfs_helper: {exc}", file=sys.stderr)
        return exc.status
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
