"""The libcephfs helper: replay a schedule on CephFS, measure CephFS for ``replay calibrate``, stat and
write RADOS objects.

Run by Debian's ``/usr/bin/python3`` (the only interpreter that can import the ``python3-cephfs`` and
``python3-rados`` bindings), so this file uses the standard library and those two modules only; it
imports nothing from trainio, and reports host CPU as /proc/stat's raw numbers.

    /usr/bin/python3 cephfs_helper.py {cephfs,rados,calibrate} PLAN.json     (PLAN.json or - for stdin)

The plans, the results and the exit statuses are in docs/replay.md (the libcephfs helper).
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


def _import_cephfs():
    try:
        import cephfs
    except ImportError as exc:
        raise HelperError(EXIT_IMPORT, f"{sys.executable} cannot import the cephfs binding: {exc}") from exc
    return cephfs


def _mount(cephfs, conf: str, options: dict | None = None):
    fs = cephfs.LibCephFS(conffile=conf)
    try:
        fs.conf_set("client_mount_timeout", MOUNT_TIMEOUT_S)
        for name, value in (options or {}).items():
            fs.conf_set(name, value)
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
    cephfs = _import_cephfs()
    try:
        conf, root, files, processes = plan["conf"], plan["root"], plan["files"], plan["processes"]
        no_stall, seed = bool(plan.get("no_stall", False)), int(plan.get("seed", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc
    if not str(root).startswith("/"):
        raise HelperError(EXIT_BAD_PLAN, f"root(={root!r}) must be an absolute path inside the file system")
    mounts: dict = {}
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


# ----------------------------------------------------------------------------------- calibrate


def _host_stat() -> list[int]:
    """The numbers of /proc/stat's ``cpu`` line, raw: trainio.tracefile.hostcpu reads them (one
    definition of busy)."""
    with open("/proc/stat", encoding="ascii") as f:
        return [int(v) for v in f.readline().split()[1:]]


def _calibrate_mount(cephfs, conf: str):
    return _mount(cephfs, conf, {"client_oc": "false"})  # reads reach the OSDs, not libcephfs's object cache


class _Timed:
    """The timed phase of one cell: wall time, this process's CPU and the host's ticks."""

    def __enter__(self):
        self.host = [_host_stat()]
        self.cpu0, self.t0 = time.process_time(), time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.t0
        self.cpu_s = time.process_time() - self.cpu0
        self.host.append(_host_stat())

    def result(self, cell: dict, ops: int, nbytes: int, total_s: float, first_byte_s: float | None = None) -> dict:
        return {
            "name": cell["name"],
            "ops": ops,
            "bytes": nbytes,
            "seconds": self.seconds,
            "latency_s": total_s / ops,
            "first_byte_s": first_byte_s,
            "cpu_s": self.cpu_s,
            "host_stat": self.host,
        }


def _cal_read_loop(cephfs, fs, path: str, fd: int, cell: dict, seed: int, barrier, out: list) -> None:
    """One thread of a randread cell: its read times, or the error that stopped it, on ``out``."""
    size, seconds, min_ops = int(cell["size"]), float(cell["seconds"]), int(cell["min_ops"])
    pause = float(cell.get("pause_s", 0.0))  # idle after each read, as a loader decodes between them
    slots = max(1, int(cell["file_size"]) // size)
    rng = random.Random(seed)
    times: list[float] = []
    try:
        barrier.wait()
        begin = time.monotonic()
        while time.monotonic() - begin < seconds or len(times) < min_ops:
            offset = rng.randrange(slots) * size
            start = time.monotonic()
            data = fs.read(fd, offset, size)
            times.append(time.monotonic() - start)
            if len(data) != size:
                raise HelperError(1, f"short read of {path} at {offset}: {len(data)} of {size} bytes")
            if pause:
                time.sleep(pause)
    except (cephfs.Error, HelperError) as exc:
        out.append(exc)
        return
    out.append(times)


def _cal_randread(cephfs, fs, root: str, plan: dict, cell: dict, index: int) -> dict:
    threads, path = int(cell["threads"]), _join(root, plan["data"])
    cell = {**cell, "file_size": fs.stat(path).st_size}
    fds = [fs.open(path, "r") for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    outs: list[list] = [[] for _ in range(threads)]
    workers = [
        threading.Thread(
            target=_cal_read_loop,
            args=(cephfs, fs, path, fds[i], cell, plan.get("seed", 0) * 1000 + index * 100 + i, barrier, outs[i]),
            daemon=True,
        )
        for i in range(threads)
    ]
    try:
        for worker in workers:
            worker.start()
        barrier.wait()
        with _Timed() as timed:
            for worker in workers:
                worker.join()
    finally:
        for fd in fds:
            fs.close(fd)
    for out in outs:
        if out and isinstance(out[0], Exception):
            raise HelperError(1, f"{cell['name']}: {out[0]}")
    times = [t for out in outs for t in out[0]]
    return timed.result(cell, len(times), len(times) * int(cell["size"]), sum(times))


def _cal_metadata(cephfs, conf: str, root: str, plan: dict, cell: dict) -> dict:
    seconds, min_ops, op = float(cell["seconds"]), int(cell["min_ops"]), cell["op"]
    fs = _calibrate_mount(cephfs, conf)  # a fresh client: no caps, no cached metadata
    opens: list[float] = []
    totals: list[float] = []
    nbytes = 0
    try:
        fs.stat(root)  # the walk to the folder, once, outside the timed phase
        with _Timed() as timed:
            begin = time.monotonic()
            for rel in plan["samples"]:
                if time.monotonic() - begin >= seconds and len(totals) >= min_ops:
                    break
                path = _join(root, rel)
                t0 = time.monotonic()
                if op == "stat":
                    fs.stat(path)
                    totals.append(time.monotonic() - t0)
                    continue
                fd = fs.open(path, "r")
                t1 = time.monotonic()
                try:
                    size = fs.fstat(fd).st_size
                    data = fs.read(fd, 0, size)
                finally:
                    fs.close(fd)
                if len(data) != size:
                    raise HelperError(1, f"short read of {path}: {len(data)} of {size} bytes")
                nbytes += len(data)
                opens.append(t1 - t0)
                totals.append(time.monotonic() - t0)
    except cephfs.Error as exc:
        raise HelperError(1, f"{cell['name']}: {exc}") from exc
    finally:
        fs.shutdown()
    if not totals:
        raise HelperError(EXIT_BAD_PLAN, f"{cell['name']}: no sample files in the plan")
    return timed.result(cell, len(totals), nbytes, sum(totals), sum(opens) / len(opens) if opens else None)


def calibrate(plan: dict) -> dict:
    cephfs = _import_cephfs()
    try:
        conf, root, files, cells = plan["conf"], plan["root"], plan["files"], plan["cells"]
        seed = int(plan.get("seed", 0))
        if plan["data"] not in files or not all(rel in files for rel in plan["samples"]):
            raise KeyError("data / samples: every one must be in files")
        ops = {cell["op"] for cell in cells}
    except (KeyError, TypeError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc
    if not ops <= {"randread", "open-read-close", "stat"}:
        raise HelperError(EXIT_BAD_PLAN, f"unknown cell op(s) {sorted(ops - {'randread', 'open-read-close', 'stat'})}")
    if not str(root).startswith("/"):
        raise HelperError(EXIT_BAD_PLAN, f"root(={root!r}) must be an absolute path inside the file system")
    fs = _calibrate_mount(cephfs, conf)
    try:
        try:
            version = ".".join(str(part) for part in fs.version())
            layout = _layout(cephfs, fs, root, files, seed)
        except cephfs.Error as exc:
            raise HelperError(1, f"cannot lay out the calibration files under {root}: {exc}") from exc
    finally:
        fs.shutdown()  # its write caps would otherwise be recalled during the reads
    results = []
    fs = _calibrate_mount(cephfs, conf)
    try:
        for index, cell in enumerate(cells):
            if cell["op"] == "randread":
                try:
                    results.append(_cal_randread(cephfs, fs, root, plan, cell, index))
                except cephfs.Error as exc:
                    raise HelperError(1, f"{cell['name']}: {exc}") from exc
            else:
                results.append(_cal_metadata(cephfs, conf, root, plan, cell))
    finally:
        fs.shutdown()
    return {"version": version, "layout": layout, "cells": results}


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
        bad: list[list] = []
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


COMMANDS = {"cephfs": replay_cephfs, "rados": rados_objects, "calibrate": calibrate}


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
