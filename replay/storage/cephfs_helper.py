"""The libcephfs helper: replay a schedule on CephFS, measure CephFS for ``replay calibrate``, stat and
write RADOS objects.

Run by Debian's ``/usr/bin/python3`` (the only interpreter that can import the ``python3-cephfs`` and
``python3-rados`` bindings), so this file uses the standard library and those two modules only; it
imports nothing from trainio, and reports host CPU as /proc/stat's raw numbers.

    /usr/bin/python3 cephfs_helper.py COMMAND PLAN.json     (PLAN.json or - for stdin)

COMMAND: cephfs (replay), calibrate, inspect / layout / remove (a layout root in CephFS), rados.

The plans, the results and the exit statuses are in docs/replay.md (the libcephfs helper).
"""

from __future__ import annotations

import json
import math
import random
import stat
import sys
import threading
import time

CHUNK = 8 * 2**20
MANIFEST_MAX_BYTES = 64 * 2**20
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


def _kind(cephfs, fs, path: str):
    """(kind, size) of ``path`` without following a link: missing, file, link, dir or other."""
    try:
        st = fs.lstat(path)
    except cephfs.ObjectNotFound:
        return "missing", 0
    mode = st.st_mode
    for kind, test in (("link", stat.S_ISLNK), ("file", stat.S_ISREG), ("dir", stat.S_ISDIR)):
        if test(mode):
            return kind, st.st_size
    return "other", 0


def _found(cephfs, fs, root: str, rel: str, folders: dict) -> list:
    """[kind, size, why] of a layout name, as trainio's layout rules read it: a link or a file on the
    way to it blocks it."""
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if folder not in folders:
            kind, _ = _kind(cephfs, fs, _join(root, folder))
            folders[folder] = {
                "dir": None,
                "missing": ["missing", 0, ""],
                "link": ["blocked", 0, f"a symbolic link on the way ({folder}); trainio never follows one"],
            }.get(kind, ["blocked", 0, f"a file where the layout needs a folder ({folder})"])
        if folders[folder] is not None:
            return folders[folder]
    kind, size = _kind(cephfs, fs, _join(root, rel))
    if kind in ("dir", "other"):
        return ["blocked", 0, "a folder (or other non-file) where the layout puts a file"]
    return [kind, size, ""]


def _read_whole(fs, path: str) -> bytes:
    fd = fs.open(path, "r")
    try:
        return fs.read(fd, 0, MANIFEST_MAX_BYTES)
    finally:
        fs.close(fd)


def _fields(plan: dict, *keys: str) -> list:
    """The plan's values of ``keys``; a missing one is a bad plan."""
    try:
        return [plan[key] for key in keys]
    except (KeyError, TypeError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc


def inspect(plan: dict) -> dict:
    """The layout root: does it exist, a few names in it, the manifest's text, and each needed name."""
    cephfs = _import_cephfs()
    conf, root, names, manifest = _fields(plan, "conf", "root", "names", "manifest")
    fs = _mount(cephfs, conf)
    try:
        kind, _ = _kind(cephfs, fs, root)
        if kind == "missing":
            return {"exists": False, "others": [], "manifest": None, "found": {n: ["missing", 0, ""] for n in names}}
        if kind != "dir":
            return {"exists": True, "is_dir": False}
        others: list[str] = []
        handle = fs.opendir(root)
        try:
            while len(others) < 4:
                entry = fs.readdir(handle)
                if entry is None:
                    break
                name = entry.d_name.decode("utf-8", "replace")
                if name not in (".", "..", manifest):
                    others.append(name)
        finally:
            fs.closedir(handle)
        text = None
        manifest_kind, _ = _kind(cephfs, fs, _join(root, manifest))
        if manifest_kind == "file":
            text = _read_whole(fs, _join(root, manifest)).decode("utf-8", "replace")
        elif manifest_kind != "missing":
            text = f"(a {manifest_kind}, not a file)"
        folders: dict = {}
        found = {name: _found(cephfs, fs, root, name, folders) for name in names}
        return {"exists": True, "is_dir": True, "others": sorted(others), "manifest": text, "found": found}
    except cephfs.Error as exc:
        raise HelperError(1, f"cannot inspect {root}: {exc}") from exc
    finally:
        fs.shutdown()


def _write_text(fs, path: str, text: str) -> None:
    """Replace ``path`` with ``text``: a new file renamed over it (a link there is replaced, not followed)."""
    temp = path + ".tmp"
    fd = fs.open(temp, "w", 0o644)
    try:
        fs.write(fd, text.encode(), 0)
    finally:
        fs.close(fd)
    fs.rename(temp, path)


def layout(plan: dict) -> dict:
    """Write the manifest (``before``), every name of ``write`` (seeded bytes; a file or link there is
    unlinked first, never written through), then the manifest (``after``)."""
    cephfs = _import_cephfs()
    try:
        conf, root, files, write = plan["conf"], plan["root"], plan["files"], plan["write"]
        manifest, seed = plan["manifest"], int(plan.get("seed", 0))
        names = [(rel, int(files[rel])) for rel in write]
    except (KeyError, TypeError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc
    fs = _mount(cephfs, conf)
    written = bytes_written = 0
    try:
        fs.mkdirs(root, 0o755)
        _write_text(fs, _join(root, manifest["name"]), manifest["before"])
        folders: dict = {}
        made: set = set()
        for rel, size in names:
            kind, _, why = _found(cephfs, fs, root, rel, folders)
            if kind == "blocked":
                raise HelperError(EXIT_BAD_PLAN, f"{_join(root, rel)}: {why}")
            path = _join(root, rel)
            if kind in ("file", "link"):
                fs.unlink(path)
            folder = rel.rpartition("/")[0]
            if folder and folder not in made:
                fs.mkdirs(_join(root, folder), 0o755)
                made.add(folder)
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
        _write_text(fs, _join(root, manifest["name"]), manifest["after"])
    except cephfs.Error as exc:
        raise HelperError(1, f"cannot write the layout under {root}: {exc}") from exc
    finally:
        fs.shutdown()
    return {"files": len(files), "written": written, "bytes_written": bytes_written}


def remove(plan: dict) -> dict:
    """Unlink the regular files ``names`` (nothing else, no link followed), the manifest, then the
    folders left empty."""
    cephfs = _import_cephfs()
    conf, root, names, manifest = _fields(plan, "conf", "root", "names", "manifest")
    fs = _mount(cephfs, conf)
    removed = 0
    try:
        folders: dict = {}
        emptied: set[str] = set()
        for rel in [*names, manifest]:
            kind, size, _ = _found(cephfs, fs, root, rel, folders)
            if kind == "file":
                fs.unlink(_join(root, rel))
                removed += size
            parts = rel.split("/")
            emptied.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        for folder in sorted(emptied, key=lambda f: f.count("/"), reverse=True) + [""]:
            try:
                fs.rmdir(_join(root, folder).rstrip("/"))
            except cephfs.Error:
                pass  # not empty: something else is in it
    except cephfs.Error as exc:
        raise HelperError(1, f"cannot remove the layout under {root}: {exc}") from exc
    finally:
        fs.shutdown()
    return {"bytes_removed": removed}


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
        self.reads: list[float] = []
        """The first read's issue, the last read's issue and end (monotonic seconds)."""

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
            issued = time.monotonic()
            data = self._call("read", rel, lambda: self.fs.read(fds[rel], offset, length))
            self.reads[:] = [self.reads[0] if self.reads else issued, issued, time.monotonic()]
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
        conf, root, processes = plan["conf"], plan["root"], plan["processes"]
        no_stall = bool(plan.get("no_stall", False))
    except (KeyError, TypeError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc
    if not str(root).startswith("/"):
        raise HelperError(EXIT_BAD_PLAN, f"root(={root!r}) must be an absolute path inside the file system")
    mounts: dict = {}
    threads: list[_Process] = []
    try:
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
        "processes": [
            {
                "name": t.name,
                "bytes": t.bytes,
                "ops": t.ops,
                "errors": t.errors,
                "duration_s": t.end - t.t0,
                **dict(zip(("first_read_s", "last_read_s", "last_end_s"), t.reads, strict=False)),
            }
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
        conf, root, cells = plan["conf"], plan["root"], plan["cells"]
        if "data" not in plan or "samples" not in plan:
            raise KeyError("data / samples")
        ops = {cell["op"] for cell in cells}
    except (KeyError, TypeError, ValueError) as exc:
        raise HelperError(EXIT_BAD_PLAN, f"plan is missing or mistypes {exc}") from exc
    if not ops <= {"randread", "open-read-close", "stat"}:
        raise HelperError(EXIT_BAD_PLAN, f"unknown cell op(s) {sorted(ops - {'randread', 'open-read-close', 'stat'})}")
    if not str(root).startswith("/"):
        raise HelperError(EXIT_BAD_PLAN, f"root(={root!r}) must be an absolute path inside the file system")
    results = []
    fs = _calibrate_mount(cephfs, conf)  # a mount of its own: the layout's write caps are gone
    try:
        version = ".".join(str(part) for part in fs.version())
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
    return {"version": version, "cells": results}


# ----------------------------------------------------------------------------------------- RADOS


def rados_objects(plan: dict) -> dict:
    """Stat ``objects`` (name -> bytes) in ``pool``; with ``manifest`` ({"name"}) read it too; with
    ``write`` (names), write ``manifest.before``, those objects (seeded bytes, replacing what is there),
    then ``manifest.after``; with ``remove`` (names), delete those and the manifest."""
    try:
        import rados
    except ImportError as exc:
        raise HelperError(EXIT_IMPORT, f"{sys.executable} cannot import the rados binding: {exc}") from exc
    try:
        conf, pool, objects = plan["conf"], plan["pool"], {name: int(size) for name, size in plan["objects"].items()}
        write, remove, seed = list(plan.get("write", [])), list(plan.get("remove", [])), int(plan.get("seed", 0))
        manifest = plan.get("manifest") or {}
        if (write or remove) and "name" not in manifest:
            raise KeyError("manifest: writing or removing needs the manifest's name")
        if not set(write) <= set(objects):
            raise KeyError("write: every name must be in objects")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
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
        result: dict = {"manifest": None, "written": 0, "bytes_written": 0, "bytes_removed": 0}
        try:
            if "name" in manifest:
                try:
                    result["manifest"] = ioctx.read(manifest["name"], MANIFEST_MAX_BYTES).decode("utf-8", "replace")
                except rados.ObjectNotFound:
                    pass
            if write:
                ioctx.write_full(manifest["name"], manifest["before"].encode())
                for name in write:
                    ioctx.write_full(name, b"")  # replaces the object whole: nothing of it is left
                    for start, data in _random_bytes(seed, name, objects[name]):
                        ioctx.write(name, data, start)  # raises on failure, e.g. past osd_max_object_size
                    result["written"] += 1
                    result["bytes_written"] += objects[name]
                ioctx.write_full(manifest["name"], manifest["after"].encode())
            found = {}
            for name in sorted(objects):
                try:
                    found[name] = ioctx.stat(name)[0]
                except rados.ObjectNotFound:
                    found[name] = -1
            for name in [*remove, *([manifest["name"]] if remove else [])]:
                try:
                    size = ioctx.stat(name)[0]
                    ioctx.remove_object(name)
                    result["bytes_removed"] += size
                except rados.ObjectNotFound:
                    pass
        except rados.Error as exc:
            raise HelperError(1, f"rados pool {pool!r}: {exc}") from exc
        finally:
            ioctx.close()
    finally:
        cluster.shutdown()
    bad = [[name, objects[name], have] for name, have in found.items() if have != objects[name]]
    return {**result, "objects": len(objects), "ok": len(objects) - len(bad), "bad": bad[:MAX_MESSAGES], "found": found}


COMMANDS = {
    "cephfs": replay_cephfs,
    "rados": rados_objects,
    "calibrate": calibrate,
    "inspect": inspect,
    "layout": layout,
    "remove": remove,
}


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
