"""Tests for the LD_PRELOAD interposer in tracer/_interpose.c.

The library is built once per session with the system C compiler.  Every test
runs a short Python child with LD_PRELOAD set to the library; the child opens
the same (already loaded) copy with ctypes, does some I/O, drains the record
buffer and prints a JSON result that the test asserts on.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numpy")

CC = shutil.which("cc")
if CC is None:
    pytest.skip("no C compiler on PATH", allow_module_level=True)

SRC = Path(__file__).resolve().parents[2] / "tracer" / "_interpose.c"
CFLAGS = ["-O2", "-shared", "-fPIC", "-Wall", "-Wextra"]
LIBS = ["-ldl", "-lpthread"]


def _compile(out, extra=()):
    cmd = [CC, *CFLAGS, *extra, "-o", str(out), str(SRC), *LIBS]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("trainio_lib") / "libtrainio_interpose.so"
    res = _compile(out)
    assert res.returncode == 0, res.stderr
    return str(out), res.stderr


@pytest.fixture(scope="session")
def lib(build):
    return build[0]


# Shared by every child script: loads the library and decodes drained records.
PRELUDE = r"""
import ctypes, json, os, sys, threading
import numpy as np

LIB = ctypes.CDLL(os.environ["TRAINIO_LIB"])
DT = np.dtype([("start_ns", "<i8"), ("dur_ns", "<i8"), ("offset", "<i8"),
               ("requested", "<i8"), ("returned", "<i8"), ("tid", "<i4"),
               ("fd", "<i4"), ("path_off", "<u4"), ("path_len", "<u4"),
               ("op", "u1"), ("kind", "u1"), ("pad", "V2"), ("file_id", "<u4")])
assert DT.itemsize == 64, DT.itemsize
LIB.trainio_drain.restype = ctypes.c_size_t
LIB.trainio_drain.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                              ctypes.c_void_p, ctypes.c_size_t]
LIB.trainio_dropped.restype = ctypes.c_uint64
(OPEN, READ, PREAD, READV, PREADV, FREAD, CLOSE, STAT, FSTAT, MMAP, FOPEN,
 FCLOSE, FDPATH) = range(1, 14)


def drain_np(cap=1 << 16, arena_cap=1 << 24):
    out = np.zeros(max(cap, 1), DT)
    arena = ctypes.create_string_buffer(max(arena_cap, 1))
    n = LIB.trainio_drain(out.ctypes.data, cap, arena, arena_cap)
    out = out[:n]
    used = int(out["path_len"].astype(np.int64).sum())
    return out, ctypes.string_at(arena, used)


def drain(cap=1 << 16, arena_cap=1 << 24):
    out, raw = drain_np(cap, arena_cap)
    recs = []
    for r in out:
        o, n = int(r["path_off"]), int(r["path_len"])
        recs.append({k: int(r[k]) for k in DT.names if k not in ("pad",)}
                    | {"path": raw[o:o + n].decode("utf-8", "replace")})
    return recs


def drain_all():
    recs = []
    while True:
        chunk = drain()
        if not chunk:
            return recs
        recs += chunk


def emit(obj):
    print("RESULT " + json.dumps(obj), flush=True)


drain_all()  # start each test from an empty buffer (interpreter start-up I/O)
"""


def run_child(lib, tmp_path, body, args=()):
    script = tmp_path / "child.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = dict(os.environ, LD_PRELOAD=lib, TRAINIO_LIB=lib)
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout[-2000:]
    return json.loads(lines[0][len("RESULT ") :])


def test_builds_without_warnings(build):
    assert build[1].strip() == ""


def test_builds_with_fortify_and_largefile_flags(tmp_path):
    # Python's CFLAGS / distro defaults may add these; the interposer must not care.
    res = _compile(tmp_path / "f.so", ["-O3", "-D_FORTIFY_SOURCE=2", "-D_FILE_OFFSET_BITS=64"])
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == ""


def test_non_python_programs_unaffected(lib, tmp_path):
    f = tmp_path / "data.txt"
    env = dict(os.environ, LD_PRELOAD=lib)
    cmd = f"echo hello > {f} && cat {f} {f} && ls {tmp_path}"
    res = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello\nhello\ndata.txt\n"
    assert res.stderr == ""


def test_version_and_enable_switch(lib, tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"x" * 100)
    out = run_child(
        lib,
        tmp_path,
        """
        p = sys.argv[1]
        fd = os.open(p, os.O_RDONLY)
        LIB.trainio_set_enabled(0)
        os.pread(fd, 10, 1)
        LIB.trainio_set_enabled(1)
        os.pread(fd, 10, 2)
        recs = drain_all()
        emit({"version": LIB.trainio_version(),
              "pread_offsets": [r["offset"] for r in recs if r["op"] == PREAD]})
        """,
        [p],
    )
    assert out["version"] == 1
    assert out["pread_offsets"] == [2]


def test_open_read_file(lib, tmp_path):
    p = tmp_path / "sample.bin"
    p.write_bytes(os.urandom(12345))
    out = run_child(
        lib,
        tmp_path,
        """
        p = sys.argv[1]
        with open(p, "rb") as fh:
            data = fh.read()
        recs = drain_all()
        opens = [i for i, r in enumerate(recs) if r["op"] == OPEN and r["path"] == p]
        i0 = opens[0]
        fd = recs[i0]["fd"]
        i1 = next(i for i in range(i0, len(recs))
                  if recs[i]["op"] == CLOSE and recs[i]["fd"] == fd)
        reads = [r for r in recs[i0:i1] if r["op"] == READ and r["fd"] == fd]
        emit({"n_opens": len(opens), "len": len(data), "open": recs[i0],
              "read_sum": sum(r["returned"] for r in reads),
              "read_ids": sorted({r["file_id"] for r in reads}),
              "read_kinds": sorted({r["kind"] for r in reads}),
              "close": recs[i1], "tids": sorted({r["tid"] for r in recs}),
              "me": threading.get_native_id(),
              "durs_ok": all(r["dur_ns"] >= 0 and r["start_ns"] > 0 for r in recs)})
        """,
        [p],
    )
    assert out["n_opens"] == 1
    assert out["len"] == 12345
    assert out["read_sum"] == 12345
    assert out["read_kinds"] == [1]
    op = out["open"]
    assert op["returned"] == op["fd"] >= 0
    assert op["requested"] & os.O_ACCMODE == os.O_RDONLY
    assert op["kind"] == 1 and op["offset"] == -1
    assert out["close"]["returned"] == 0 and out["close"]["kind"] == 1
    # Reads and the close carry the file id the open was given: paths resolve without fd replay.
    assert op["file_id"] > 0
    assert out["read_ids"] == [op["file_id"]] and out["close"]["file_id"] == op["file_id"]
    assert out["tids"] == [out["me"]]
    assert out["durs_ok"]


def test_pread_readv_preadv_mmap(lib, tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(bytes(range(256)) * 64)  # 16384 bytes
    out = run_child(
        lib,
        tmp_path,
        """
        import mmap
        p = sys.argv[1]
        fd = os.open(p, os.O_RDONLY)
        a = os.pread(fd, 100, 1234)
        b1, b2 = bytearray(10), bytearray(30)
        nv = os.readv(fd, [b1, b2])
        c1, c2 = bytearray(7), bytearray(9)
        npv = os.preadv(fd, [c1, c2], 5000)
        m = mmap.mmap(fd, 8192, access=mmap.ACCESS_READ, offset=4096)
        first = m[0]
        m.close()
        os.close(fd)
        recs = [r for r in drain_all() if r["fd"] == fd]
        emit({"a": len(a), "nv": nv, "npv": npv, "first": first, "fd": fd,
              "pread": [r for r in recs if r["op"] == PREAD],
              "readv": [r for r in recs if r["op"] == READV],
              "preadv": [r for r in recs if r["op"] == PREADV],
              "mmap": [r for r in recs if r["op"] == MMAP]})
        """,
        [p],
    )
    assert out["a"] == 100 and out["nv"] == 40 and out["npv"] == 16
    assert out["first"] == 4096 % 256
    [pr] = out["pread"]
    assert (pr["offset"], pr["requested"], pr["returned"], pr["kind"]) == (
        1234,
        100,
        100,
        1,
    )
    [rv] = out["readv"]
    assert (rv["offset"], rv["requested"], rv["returned"]) == (-1, 40, 40)
    [pv] = out["preadv"]
    assert (pv["offset"], pv["requested"], pv["returned"]) == (5000, 16, 16)
    [mm] = out["mmap"]
    assert (mm["offset"], mm["requested"], mm["kind"]) == (4096, 8192, 1)
    assert mm["returned"] not in (-1, 0)


def test_numpy_fromfile_goes_through_fread(lib, tmp_path):
    p = tmp_path / "arr.f32"
    n = 100_000
    p.write_bytes(b"\x01\x02\x03\x04" * n)
    out = run_child(
        lib,
        tmp_path,
        """
        p = sys.argv[1]
        arr = np.fromfile(p, dtype=np.float32)
        recs = drain_all()
        real = os.path.realpath(p)
        fds = {r["fd"] for r in recs if r["op"] == FDPATH and r["path"] == real}
        freads = [r for r in recs if r["op"] == FREAD and r["fd"] in fds]
        emit({"size": int(arr.nbytes), "n_fdpath_fds": len(fds),
              "fread_sum": sum(r["returned"] for r in freads),
              "fread_req": sum(r["requested"] for r in freads),
              "kinds": sorted({r["kind"] for r in freads}),
              "fopen_like": sum(1 for r in recs if r["op"] == FOPEN and r["fd"] in fds),
              "fclose": sum(1 for r in recs if r["op"] == FCLOSE and r["fd"] in fds)})
        """,
        [p],
    )
    assert out["size"] == 4 * n
    assert out["n_fdpath_fds"] == 1  # numpy dup()s the fd: discovered on first fread
    assert out["fread_sum"] == 4 * n
    assert out["fread_req"] == 4 * n
    assert out["kinds"] == [1]
    assert out["fopen_like"] == 1 and out["fclose"] == 1


def test_stdio_symbols_via_ctypes(lib, tmp_path):
    p = tmp_path / "stdio.bin"
    p.write_bytes(b"z" * 1000)
    out = run_child(
        lib,
        tmp_path,
        """
        p = sys.argv[1]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        for name in ("fread", "__fread_chk"):
            getattr(libc, name).restype = ctypes.c_size_t
        libc.fread.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                               ctypes.c_void_p]
        libc.__fread_chk.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                                     ctypes.c_size_t, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        buf = ctypes.create_string_buffer(4096)
        fp = libc.fopen(p.encode(), b"rb")
        n1 = libc.fread(buf, 10, 30, fp)           # 300 bytes
        n2 = libc.__fread_chk(buf, 4096, 100, 20, fp)  # 7 full items of 100 left
        rc = libc.fclose(fp)
        recs = drain_all()
        emit({"n1": n1, "n2": n2, "rc": rc,
              "ops": [(r["op"], r["kind"], r["requested"], r["returned"], r["path"])
                      for r in recs if r["op"] in (FOPEN, FREAD, FCLOSE)]})
        """,
        [p],
    )
    assert (out["n1"], out["n2"], out["rc"]) == (30, 7, 0)
    fopen, fread1, fread2, fclose = out["ops"]
    assert fopen[0] == 11 and fopen[1] == 1 and fopen[4] == str(p)
    assert fopen[2] == os.O_RDONLY and fopen[3] >= 0
    assert fread1 == [6, 1, 300, 300, ""]
    assert fread2 == [6, 1, 2000, 700, ""]
    assert fclose[0] == 12 and fclose[3] == 0


def test_pipe_and_socket_get_fdpath(lib, tmp_path):
    out = run_child(
        lib,
        tmp_path,
        """
        import socket
        drain_all()  # drop the import's I/O, which may reuse the same fd numbers
        r, w = os.pipe()
        os.write(w, b"hello world")
        a = os.read(r, 5)
        b = os.read(r, 6)
        s1, s2 = socket.socketpair()
        s1.sendall(b"abc")
        c = os.read(s2.fileno(), 3)
        recs = drain_all()
        emit({"data": (a + b + c).decode(), "r": r, "s": s2.fileno(),
              "recs": [r_ for r_ in recs if r_["fd"] in (r, s2.fileno())]})
        """,
    )
    assert out["data"] == "hello worldabc"
    r, s = out["r"], out["s"]
    pipe = [x for x in out["recs"] if x["fd"] == r]
    assert [x["op"] for x in pipe] == [13, 2, 2]  # fdpath once, before the first read
    assert pipe[0]["kind"] == 2 and pipe[0]["path"].startswith("pipe:[")
    assert pipe[0]["dur_ns"] == 0
    assert [x["returned"] for x in pipe[1:]] == [5, 6]
    assert all(x["kind"] == 2 for x in pipe)
    sock = [x for x in out["recs"] if x["fd"] == s]
    assert [x["op"] for x in sock] == [13, 2]
    assert sock[0]["kind"] == 2 and sock[0]["path"].startswith("socket:[")
    assert sock[1]["returned"] == 3


def test_stat_records_path_and_kind(lib, tmp_path):
    p = tmp_path / "st.bin"
    p.write_bytes(b"q" * 77)
    out = run_child(
        lib,
        tmp_path,
        """
        p, d = sys.argv[1], sys.argv[2]
        size = os.stat(p).st_size
        os.lstat(d)
        try:
            os.stat(p + ".missing")
            missing = "no error"
        except FileNotFoundError:
            missing = "ENOENT"
        fd = os.open(p, os.O_RDONLY)
        os.fstat(fd)
        recs = drain_all()
        emit({"size": size, "missing": missing, "fd": fd,
              "stat": [(r["path"], r["fd"], r["kind"], r["returned"])
                       for r in recs if r["op"] == STAT],
              "fstat": [(r["fd"], r["kind"], r["returned"])
                        for r in recs if r["op"] == FSTAT and r["fd"] == fd]})
        """,
        [p, tmp_path],
    )
    assert out["size"] == 77 and out["missing"] == "ENOENT"
    assert out["stat"] == [
        [str(p), -1, 1, 0],
        [str(tmp_path), -1, 3, 0],
        [str(p) + ".missing", -1, 0, -1],
    ]
    assert out["fstat"] == [[out["fd"], 1, 0]]


def test_errno_preserved(lib, tmp_path):
    missing = tmp_path / "nope.bin"
    out = run_child(
        lib,
        tmp_path,
        """
        import errno
        p = sys.argv[1]
        try:
            open(p, "rb")
            err = None
        except FileNotFoundError as e:
            err = e.errno
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(16)
        ctypes.set_errno(0)
        bad = libc.read(9999, buf, 10)          # EBADF (fd discovery fails first)
        e_bad = ctypes.get_errno()
        r, w = os.pipe()
        os.write(w, b"abcd")
        ctypes.set_errno(1234)                  # success must leave errno untouched,
        ok = libc.read(r, buf, 4)               # even across first-read discovery
        e_ok = ctypes.get_errno()
        ctypes.set_errno(0)
        st = libc.stat(p.encode(), buf)
        e_st = ctypes.get_errno()
        ctypes.set_errno(0)
        cl = libc.close(9998)
        e_cl = ctypes.get_errno()
        # Memory stream: fileno() fails with EBADF inside the wrapper; that must
        # not leak into errno of a successful fread/fclose.
        libc.fmemopen.restype = ctypes.c_void_p
        libc.fmemopen.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        libc.fread.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                               ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        src = ctypes.create_string_buffer(b"0123456789", 10)
        mf = libc.fmemopen(src, 10, b"r")
        ctypes.set_errno(4321)
        mr = libc.fread(buf, 1, 8, mf)
        e_mr = ctypes.get_errno()
        mc = libc.fclose(mf)
        e_mc = ctypes.get_errno()
        recs = drain_all()
        emit({"err": err, "bad": bad, "e_bad": e_bad, "ok": ok, "e_ok": e_ok,
              "st": st, "e_st": e_st, "cl": cl, "e_cl": e_cl,
              "mr": mr, "e_mr": e_mr, "mc": mc, "e_mc": e_mc,
              "mem_fread": [(r_["fd"], r_["kind"], r_["returned"]) for r_ in recs
                            if r_["op"] == FREAD],
              "ENOENT": errno.ENOENT, "EBADF": errno.EBADF,
              "open_rec": [(r_["returned"], r_["fd"]) for r_ in recs
                           if r_["op"] == OPEN and r_["path"] == p],
              "bad_read": [r_["returned"] for r_ in recs
                           if r_["op"] == READ and r_["fd"] == 9999],
              "fdpath_9999": sum(1 for r_ in recs
                                 if r_["op"] == FDPATH and r_["fd"] == 9999)})
        """,
        [missing],
    )
    assert out["err"] == out["ENOENT"]
    assert out["open_rec"] == [[-1, -1]]
    assert out["bad"] == -1 and out["e_bad"] == out["EBADF"]
    assert out["bad_read"] == [-1] and out["fdpath_9999"] == 0
    assert out["ok"] == 4 and out["e_ok"] == 1234
    assert out["st"] == -1 and out["e_st"] == out["ENOENT"]
    assert out["cl"] == -1 and out["e_cl"] == out["EBADF"]
    assert (out["mr"], out["e_mr"], out["mc"], out["e_mc"]) == (8, 4321, 0, 4321)
    assert out["mem_fread"] == [[-1, 0, 8]]


def test_fork_child_starts_empty(lib, tmp_path):
    a, b = tmp_path / "parent.bin", tmp_path / "child.bin"
    a.write_bytes(b"a" * 500)
    b.write_bytes(b"b" * 700)
    res = tmp_path / "child.json"
    out = run_child(
        lib,
        tmp_path,
        """
        a, b, res = sys.argv[1:4]
        with open(a, "rb") as fh:
            fh.read()
        pid = os.fork()
        if pid == 0:
            first = drain_all()
            with open(b, "rb") as fh:
                fh.read()
            second = drain_all()
            me = threading.get_native_id()
            info = {"first_n": len(first),
                    "second_paths": sorted({r["path"] for r in second if r["path"]}),
                    "second_tids": sorted({r["tid"] for r in second}), "me": me,
                    "dropped": LIB.trainio_dropped()}
            with open(res, "w") as fh:
                json.dump(info, fh)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        recs = drain_all()
        with open(res) as fh:
            child = json.load(fh)
        emit({"status": status, "child": child, "parent_tid": threading.get_native_id(),
              "parent_paths": sorted({r["path"] for r in recs if r["path"]}),
              "parent_tids": sorted({r["tid"] for r in recs})})
        """,
        [a, b, res],
    )
    assert out["status"] == 0
    child = out["child"]
    assert child["first_n"] == 0
    assert str(b) in child["second_paths"] and str(a) not in child["second_paths"]
    assert child["second_tids"] == [child["me"]] != [out["parent_tid"]]
    assert child["dropped"] == 0
    assert str(a) in out["parent_paths"] and str(b) not in out["parent_paths"]
    assert out["parent_tids"] == [out["parent_tid"]]


def test_suppress_thread_is_per_thread(lib, tmp_path):
    files = []
    for name in ("a", "b", "c"):
        f = tmp_path / f"{name}.bin"
        f.write_bytes(name.encode() * 64)
        files.append(f)
    out = run_child(
        lib,
        tmp_path,
        """
        a, b, c = sys.argv[1:4]
        worker_tid = []
        def worker():
            worker_tid.append(threading.get_native_id())
            with open(b, "rb") as fh:
                fh.read()
        LIB.trainio_suppress_thread(1)
        with open(a, "rb") as fh:
            fh.read()
        t = threading.Thread(target=worker)
        t.start(); t.join()
        LIB.trainio_suppress_thread(0)
        with open(c, "rb") as fh:
            fh.read()
        recs = drain_all()
        by_path = {}
        for r in recs:
            if r["op"] == OPEN:
                by_path.setdefault(r["path"], []).append(r["tid"])
        emit({"by_path": by_path, "worker": worker_tid[0],
              "main": threading.get_native_id()})
        """,
        files,
    )
    by_path = out["by_path"]
    assert str(files[0]) not in by_path
    assert by_path[str(files[1])] == [out["worker"]]
    assert by_path[str(files[2])] == [out["main"]]
    assert out["worker"] != out["main"]


def test_drain_small_arena_keeps_order(lib, tmp_path):
    paths = [tmp_path / (f"{i}_" + "x" * (20 + i)) for i in range(5)]
    out = run_child(
        lib,
        tmp_path,
        """
        ps = sys.argv[1:]
        for p in ps:
            try:
                os.stat(p)
            except FileNotFoundError:
                pass
        def view(recs):
            return [(r["op"], r["path"], r["path_off"], r["path_len"]) for r in recs]
        d0 = drain(cap=100, arena_cap=0)
        d1 = drain(cap=100, arena_cap=len(ps[0]) + len(ps[1]) + 3)
        d2 = drain(cap=1)
        d3 = drain_all()
        emit({"d0": view(d0), "d1": view(d1), "d2": view(d2), "d3": view(d3)})
        """,
        paths,
    )
    ps = [str(p) for p in paths]
    assert out["d0"] == []
    assert out["d1"] == [
        [8, ps[0], 0, len(ps[0])],
        [8, ps[1], len(ps[0]), len(ps[1])],
    ]
    assert out["d2"] == [[8, ps[2], 0, len(ps[2])]]
    assert [(r[1], r[2]) for r in out["d3"]] == [(ps[3], 0), (ps[4], len(ps[3]))]


def test_partial_drain_then_refill_compacts(lib, tmp_path):
    # Leave a drained prefix, then fill past the initial capacity so the buffer
    # compacts (records and path arena shift together) before it grows.
    pa, pb = str(tmp_path / "short_a"), str(tmp_path / ("long_b" * 20))
    out = run_child(
        lib,
        tmp_path,
        """
        pa, pb = sys.argv[1:3]
        def st(p):
            try:
                os.stat(p)
            except FileNotFoundError:
                pass
        for _ in range(10):
            st(pa)
        first = drain(cap=4)
        for _ in range(30000):
            st(pb)
        rest = drain_all()
        emit({"first": [r["path"] for r in first],
              "rest": [r["path"] for r in rest if r["op"] == STAT]})
        """,
        [pa, pb],
    )
    assert out["first"] == [pa] * 4
    assert out["rest"] == [pa] * 6 + [pb] * 30000


def test_multithreaded_reads_all_recorded(lib, tmp_path):
    files = []
    for i in range(4):
        f = tmp_path / f"t{i}.bin"
        f.write_bytes(bytes([i]) * 4096)
        files.append(f)
    out = run_child(
        lib,
        tmp_path,
        """
        ps = sys.argv[1:]
        fds = [os.open(p, os.O_RDONLY) for p in ps]
        tids = {}
        barrier = threading.Barrier(4)
        def worker(fd):
            tids[fd] = threading.get_native_id()
            barrier.wait()
            for i in range(200):
                assert len(os.pread(fd, 16, i)) == 16
        ts = [threading.Thread(target=worker, args=(fd,)) for fd in fds]
        for t in ts: t.start()
        for t in ts: t.join()
        recs = drain_all()
        per_fd = {}
        for r in recs:
            if r["op"] == PREAD and r["fd"] in tids:
                per_fd.setdefault(r["fd"], []).append((r["tid"], r["offset"]))
        emit({"expected_tids": {str(k): v for k, v in tids.items()},
              "counts": {str(k): len(v) for k, v in per_fd.items()},
              "rec_tids": {str(k): sorted({t for t, _ in v}) for k, v in per_fd.items()},
              "offsets_in_order": all([o for _, o in v] == list(range(200))
                                      for v in per_fd.values()),
              "dropped": LIB.trainio_dropped()})
        """,
        files,
    )
    assert sorted(out["counts"].values()) == [200, 200, 200, 200]
    assert len(set(out["expected_tids"].values())) == 4
    for fd, tid in out["expected_tids"].items():
        assert out["rec_tids"][fd] == [tid]
    assert out["offsets_in_order"]
    assert out["dropped"] == 0


def test_buffer_growth_and_drop_cap(lib, tmp_path):
    p = tmp_path / "g.bin"
    p.write_bytes(b"g" * 64)
    long_path = str(tmp_path / ("L" * 150))
    out = run_child(
        lib,
        tmp_path,
        """
        p, long_path = sys.argv[1], sys.argv[2]
        fd = os.open(p, os.O_RDONLY)
        drain_all()
        # Phase 1: beyond the initial 16384 records and 1 MiB path arena.
        for i in range(40000):
            os.pread(fd, 1, i % 64)
        for i in range(20000):
            try:
                os.stat(long_path)
            except FileNotFoundError:
                pass
        out1, raw1 = drain_np(cap=1 << 20, arena_cap=1 << 26)
        n_pread1 = int(((out1["op"] == PREAD) & (out1["fd"] == fd)).sum())
        st = out1[out1["op"] == STAT]
        lp = long_path.encode()
        paths_ok = all(raw1[o:o + n] == lp for o, n in zip(st["path_off"], st["path_len"]))
        # Phase 2: overflow the 1,048,576-record cap without draining.
        N = 1_100_000
        for i in range(N):
            os.pread(fd, 1, 0)
        dropped = LIB.trainio_dropped()
        out2, _ = drain_np(cap=1 << 21, arena_cap=1 << 26)
        n_pread2 = int(((out2["op"] == PREAD) & (out2["fd"] == fd)).sum())
        os.pread(fd, 1, 7)  # buffer usable again after the drain
        out3, _ = drain_np()
        emit({"n_pread1": n_pread1, "n_stat1": int(len(st)), "paths_ok": bool(paths_ok),
              "dropped": int(dropped), "n2": int(len(out2)), "n_pread2": n_pread2,
              "after": [int(x) for x in out3["offset"][out3["op"] == PREAD]],
              "dropped_after": int(LIB.trainio_dropped())})
        """,
        [p, long_path],
    )
    assert out["n_pread1"] == 40000
    assert out["n_stat1"] == 20000 and out["paths_ok"]
    assert out["n2"] == 1 << 20
    assert out["dropped"] >= 1_100_000 - (1 << 20)
    assert out["n_pread2"] + out["dropped"] >= 1_100_000
    assert out["dropped"] <= 1_100_000 - (1 << 20) + 1000
    assert out["after"] == [7]
    assert out["dropped_after"] == out["dropped"]
