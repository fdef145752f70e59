"""Tests for the LD_PRELOAD interposer in tracer/_interpose.c.

The library is built once per session with the system C compiler.  Every test
runs a short child with LD_PRELOAD set to the library and TRAINIO_TRACE_DIR set,
so that the interposer writes its spool; a Python child reads its own spool
(``drain_all``: the records committed since the last call) and prints a JSON
result that the test asserts on.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainio.tracer.spoolread import c_records

pytest.importorskip("numpy")

CC = shutil.which("cc")
if CC is None:
    pytest.skip("no C compiler on PATH", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tracer" / "_interpose.c"
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


# Shared by every child script: loads the library and reads back its own spool.
PRELUDE = r"""
import ctypes, json, os, sys, threading
from pathlib import Path
import numpy as np
from trainio.tracer.spoolread import c_records

LIB = ctypes.CDLL(os.environ["TRAINIO_LIB"])
(OPEN, READ, PREAD, READV, PREADV, FREAD, CLOSE, STAT, FSTAT, MMAP, FOPEN,
 FCLOSE, FDPATH) = range(1, 14)
_SEEN = 0


def spool_path():
    buf = ctypes.create_string_buffer(64)
    assert LIB.trainio_tag(buf, ctypes.c_size_t(64)) == 1
    return Path(os.environ["TRAINIO_TRACE_DIR"]) / "spool" / f"io-{buf.value.decode()}.spool"


def drain_all():
    global _SEEN
    LIB.trainio_suppress_thread(1)  # reading our own spool is not the test's I/O
    try:
        _, recs, data, _ = c_records(spool_path())
    finally:
        LIB.trainio_suppress_thread(0)
    new, _SEEN = recs[_SEEN:], len(recs)
    out = []
    for r in new:
        o, n = int(r["path_off"]), int(r["path_len"])
        out.append({k: int(r[k]) for k in r.dtype.names}
                   | {"path": bytes(data[o:o + n]).decode("utf-8", "replace")})
    return out


def emit(obj):
    print("RESULT " + json.dumps(obj), flush=True)


drain_all()  # start each test from here (interpreter start-up I/O)
"""


def child_env(lib, tmp_path, **extra):
    trace = tmp_path / "trace"
    (trace / "spool").mkdir(parents=True, exist_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, LD_PRELOAD=lib, TRAINIO_LIB=lib, TRAINIO_TRACE_DIR=str(trace), PYTHONPATH=pythonpath)
    return {**env, **extra}


def run_child(lib, tmp_path, body, args=(), **extra_env):
    script = tmp_path / "child.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        env=child_env(lib, tmp_path, **extra_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout[-2000:]
    return json.loads(lines[0][len("RESULT ") :])


def spools(tmp_path):
    return sorted((tmp_path / "trace" / "spool").glob("io-*.spool"))


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
    assert out["version"] == 2
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
        links = [os.readlink(f"/proc/self/fd/{fd}") for fd in (r, s2.fileno())]
        emit({"data": (a + b + c).decode(), "r": r, "s": s2.fileno(), "links": links,
              "recs": [r_ for r_ in recs if r_["fd"] in (r, s2.fileno())]})
        """,
    )
    assert out["data"] == "hello worldabc"
    r, s = out["r"], out["s"]
    pipe = [x for x in out["recs"] if x["fd"] == r]
    assert [x["op"] for x in pipe] == [13, 2, 2]  # fdpath once, before the first read
    # named from fstat's inode, without readlink: the same name the kernel gives
    assert pipe[0]["kind"] == 2 and pipe[0]["path"] == out["links"][0] and pipe[0]["path"].startswith("pipe:[")
    assert pipe[0]["dur_ns"] == 0
    assert [x["returned"] for x in pipe[1:]] == [5, 6]
    assert all(x["kind"] == 2 for x in pipe)
    sock = [x for x in out["recs"] if x["fd"] == s]
    assert [x["op"] for x in sock] == [13, 2]
    assert sock[0]["kind"] == 2 and sock[0]["path"] == out["links"][1] and sock[0]["path"].startswith("socket:[")
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
        parent_spool = spool_path()
        pid = os.fork()
        if pid == 0:
            _SEEN = 0  # the child's spool is a new file
            with open(b, "rb") as fh:
                fh.read()
            second = drain_all()
            me = threading.get_native_id()
            info = {"own_spool": str(spool_path()) != str(parent_spool),
                    "second_paths": sorted({r["path"] for r in second if r["path"]}),
                    "second_tids": sorted({r["tid"] for r in second}), "me": me,
                    "dropped": c_records(spool_path())[0]["dropped"],
                    "forked": c_records(spool_path())[0]["forked"]}
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
    assert child["own_spool"] and child["forked"]
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
              "dropped": c_records(spool_path())[0]["dropped"]})
        """,
        files,
    )
    assert sorted(out["counts"].values()) == [200, 200, 200, 200]
    assert len(set(out["expected_tids"].values())) == 4
    for fd, tid in out["expected_tids"].items():
        assert out["rec_tids"][fd] == [tid]
    assert out["offsets_in_order"]
    assert out["dropped"] == 0


def test_spool_grows_over_many_segments_and_keeps_every_path(lib, tmp_path):
    p = tmp_path / "g.bin"
    p.write_bytes(b"g" * 64)
    long_path = str(tmp_path / ("L" * 150))
    out = run_child(
        lib,
        tmp_path,
        """
        p, long_path = sys.argv[1], sys.argv[2]
        fd = os.open(p, os.O_RDONLY)
        for i in range(300_000):  # 19 MB of records: every segment size up to the largest
            os.pread(fd, 1, i % 64)
        for i in range(20_000):  # 3 MB of paths: several path segments
            try:
                os.stat(long_path)
            except FileNotFoundError:
                pass
        recs = drain_all()
        preads = [r["offset"] for r in recs if r["op"] == PREAD and r["fd"] == fd]
        stats = [r["path"] for r in recs if r["op"] == STAT]
        emit({"preads": len(preads), "in_order": preads == [i % 64 for i in range(300_000)],
              "stats": len(stats), "paths_ok": all(x == long_path for x in stats),
              "dropped": c_records(spool_path())[0]["dropped"]})
        """,
        [p, long_path],
    )
    assert out["preads"] == 300_000 and out["in_order"]
    assert out["stats"] == 20_000 and out["paths_ok"]
    assert out["dropped"] == 0


def test_non_python_process_and_exec_get_spools_of_their_own(lib, tmp_path):
    data = tmp_path / "data.txt"
    data.write_bytes(b"x" * 5000)
    env = child_env(lib, tmp_path)
    script = f"cat {data} > /dev/null; exec cat {data}"
    res = subprocess.run(["sh", "-c", script], env=env, capture_output=True, timeout=60)
    assert res.returncode == 0 and res.stdout == b"x" * 5000
    found = {}
    for path in spools(tmp_path):
        header, recs, data_bytes, lost = c_records(path)
        assert lost == []
        reads = recs[(recs["op"] == 2) & (recs["returned"] > 0) & (recs["kind"] == 1)]
        found.setdefault(header["pid"], []).append((header["argv"], int(reads["returned"].sum())))
    # sh, its forked cat, and the cat that sh exec'd into: same pid as sh, a new spool.
    argvs = sorted(a[0] for runs in found.values() for a in runs)
    assert ["cat", str(data)] in argvs and argvs.count(["cat", str(data)]) == 2
    cat_bytes = [b for runs in found.values() for argv, b in runs if argv == ["cat", str(data)]]
    assert cat_bytes == [5000, 5000]
    assert any(len(runs) == 2 for runs in found.values())  # sh and the cat it exec'd into


def test_a_full_file_size_limit_stops_recording_without_killing_the_program(lib, tmp_path):
    """Past RLIMIT_FSIZE the kernel sends SIGXFSZ, which kills a C program: the interposer checks first."""
    data = tmp_path / "data.txt"
    data.write_bytes(b"y" * 3000)
    env = child_env(lib, tmp_path)
    res = subprocess.run(["sh", "-c", f"ulimit -f 1; cat {data}"], env=env, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"y" * 3000
    # sh recorded before its ulimit; cat, started under it, had no room for even a header.
    assert sorted(p.stat().st_size for p in spools(tmp_path))[0] == 0


def test_spool_stops_at_a_full_segment_and_keeps_what_came_before(lib, tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"f" * 64)
    out = run_child(
        lib,
        tmp_path,
        """
        import resource
        p = sys.argv[1]
        size = spool_path().stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + (256 << 10), resource.RLIM_INFINITY))
        fd = os.open(p, os.O_RDONLY)
        for i in range(100_000):
            os.pread(fd, 1, 7)
        header, recs, _, _ = c_records(spool_path())
        n = int(((recs["op"] == PREAD) & (recs["fd"] == fd)).sum())
        emit({"n": n, "stopped": header["stopped"], "reason": header["stop_reason"]})
        """,
        [p],
    )
    assert 1000 < out["n"] < 100_000
    assert out["stopped"] and "cannot reserve spool space" in out["reason"]


def _clock_source() -> str:
    try:
        return Path("/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text().strip()
    except OSError:
        return ""


SLACK = 2000
"""ns: a TSC stamp is off by at most half of TSC_PAIR_MAX ticks (its anchor pair) plus the rate's
error over one renewal period, under a microsecond on any TSC over 2 GHz."""


@pytest.mark.parametrize("tsc", ["default", "0"])
def test_time_stamps_are_the_monotonic_clocks(lib, tmp_path, tsc):
    """Every record's start and end lie between CLOCK_MONOTONIC readings taken around its call, over
    a span long enough for the TSC's rate to be known (50 ms) and each thread's anchor renewed many times,
    in a second thread too; TRAINIO_TSC=0 (and any clock source but the TSC) stamps with
    clock_gettime. The spool's header says which."""
    data = tmp_path / "d.bin"
    data.write_bytes(b"x" * 4096)
    extra = {} if tsc == "default" else {"TRAINIO_TSC": "0"}
    out = run_child(
        lib,
        tmp_path,
        f"""
        import time
        fd = os.open({str(data)!r}, os.O_RDONLY)
        drain_all()
        spans = {{}}

        def reads(name):
            got = spans[name] = []
            for i in range(3000):
                a = time.monotonic_ns()
                os.pread(fd, 1, 0)
                got.append((a, time.monotonic_ns()))
                if i % 300 == 0:
                    time.sleep(0.002)

        worker = threading.Thread(target=reads, args=("thread",))
        worker.start()
        reads("main")
        worker.join()
        recs = [r for r in drain_all() if r["op"] == PREAD and r["fd"] == fd]
        header = c_records(spool_path())[0]
        emit({{"spans": spans, "recs": recs, "tids": {{"main": threading.get_native_id(), "thread": worker.native_id}},
              "time_stamps": header["time_stamps"]}})
        """,
        **extra,
    )
    expected = (
        "tsc" if tsc == "default" and _clock_source() == "tsc" and os.uname().machine == "x86_64" else "clock_gettime"
    )
    assert out["time_stamps"] == expected
    for name, tid in out["tids"].items():
        recs = [r for r in out["recs"] if r["tid"] == tid]
        spans = out["spans"][name]
        assert len(recs) == len(spans) == 3000
        late = [
            (a, r["start_ns"], r["start_ns"] + r["dur_ns"], b)
            for (a, b), r in zip(spans, recs, strict=True)
            if not (a - SLACK <= r["start_ns"] and r["start_ns"] + r["dur_ns"] <= b + SLACK) or r["dur_ns"] < 0
        ]
        assert not late, (name, len(late), late[:3])
