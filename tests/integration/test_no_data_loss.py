"""Issue 13, item 1, for every replay target kind on the project's own Ceph (the ``ceph`` fixture) and a
directory: trainio never overwrites, deletes or writes through what it did not create; it lays a data set
out in a place of its own, marked by its manifest, and refuses anything else unless told --overwrite."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.unit.synthetic import io_row, make_trace
from trainio.replay.real.fioreplay import replay_fio
from trainio.replay.real.s3replay import replay_s3
from trainio.replay.storage import ceph
from trainio.replay.storage.layout import MANIFEST_NAME, ForeignDataError
from trainio.replay.storage.s3 import s3_client

FILES = {"train/a.jpg": 3000, "train/b.jpg": 5000, "val/c.jpg": 700}


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    """Three files, each opened, read whole and closed."""
    rows = []
    for i, (rel, size) in enumerate(FILES.items()):
        path = f"/data/set/{rel}"
        t = 1_000_000 * (i + 1)
        rows += [
            io_row(1, path, 0, t, op="open") | {"bytes_returned": None, "result": 3},
            io_row(1, path, size, t + 1000),
            io_row(1, path, 0, t + 2000, op="close") | {"bytes_returned": None, "result": 0},
        ]
    return make_trace(tmp_path_factory.mktemp("t") / "trace", [], io_rows=rows)


def tool(env: dict, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, input=data, capture_output=True, timeout=60)


def test_the_synthetic_trace_replays_on_a_new_directory_and_again_in_place(trace, tmp_path):
    first = replay_fio(trace, str(tmp_path / "ds"), no_stall=True)
    again = replay_fio(trace, str(tmp_path / "ds"), no_stall=True)
    assert (first.bytes, first.details["layout"]["written"]) == (8700, 3)
    assert again.details["layout"]["reused"] and again.details["layout"]["written"] == 0
    manifest = json.loads((tmp_path / "ds" / MANIFEST_NAME).read_text())
    assert manifest["status"] == "complete" and manifest["entries"] == FILES


def test_a_directory_with_a_users_file_is_refused_and_overwrite_takes_it(trace, tmp_path):
    precious = tmp_path / "ds" / "train" / "a.jpg"
    precious.parent.mkdir(parents=True)
    precious.write_text("MY PRECIOUS\n")
    proc = run_cli("replay", "fio", "--trace", trace, "--target", tmp_path / "ds", "--no-stall")
    assert proc.returncode == 2 and "holds data trainio did not write" in proc.stderr.splitlines()[-1]
    assert precious.read_text() == "MY PRECIOUS\n"
    replay_fio(trace, str(tmp_path / "ds"), no_stall=True, overwrite=True)
    assert precious.stat().st_size == 3000


@pytest.mark.slow
def test_rados_never_writes_over_an_object_it_did_not_write(trace, ceph_env, tmp_path):
    theirs = ceph.rados_object_name("trainio-data/train/b.jpg")
    assert tool(ceph_env, "rados", "-p", "trainpool", "put", theirs, "-", data=b"MY PRECIOUS").returncode == 0
    before = tool(ceph_env, "rados", "-p", "trainpool", "ls").stdout.split()
    with pytest.raises(ForeignDataError, match=r"rados:trainpool/trainio-data/ holds data trainio did not write"):
        replay_fio(trace, "rados:trainpool", tmp_path / "w1", no_stall=True)
    assert tool(ceph_env, "rados", "-p", "trainpool", "get", theirs, "-").stdout == b"MY PRECIOUS"
    assert tool(ceph_env, "rados", "-p", "trainpool", "ls").stdout.split() == before  # nothing written
    assert tool(ceph_env, "rados", "-p", "trainpool", "rm", theirs).returncode == 0
    result = replay_fio(trace, "rados:trainpool", tmp_path / "w2", no_stall=True)
    assert (result.bytes, result.details["layout"]["written"]) == (8700, 3)
    stat = tool(ceph_env, "rados", "-p", "trainpool", "stat", theirs).stdout.decode()
    assert stat.rstrip().endswith("size 5000")


@pytest.mark.slow
def test_cephfs_never_writes_in_a_folder_holding_a_users_file(trace, ceph_env, tmp_path):
    conf = ceph_env["CEPH_CONF"]
    write_users_file = (  # through libcephfs, under the system Python that has the binding
        "import cephfs, sys; fs = cephfs.LibCephFS(conffile=sys.argv[1]); fs.mount()\n"
        "fs.mkdirs('/users-folder', 0o755); fd = fs.open('/users-folder/notes.txt', 'w', 0o644)\n"
        "fs.write(fd, b'MY PRECIOUS', 0); fs.close(fd); fs.shutdown()"
    )
    subprocess.run([ceph.CEPH_PYTHON, "-c", write_users_file, conf], check=True, timeout=60)
    user = ceph.CephFSStore("/users-folder", tmp_path, conf)
    with pytest.raises(ForeignDataError, match=r"cephfs:/users-folder holds data trainio did not write"):
        replay_fio(trace, "cephfs:/users-folder", tmp_path / "w1", no_stall=True)
    seen = user.inspect(["notes.txt", *FILES])
    assert seen.found["notes.txt"].size == 11 and all(seen.found[rel].kind == "missing" for rel in FILES)
    result = replay_fio(trace, "cephfs:/trainio-own", tmp_path / "w2", no_stall=True)
    assert result.bytes == 8700 and result.details["layout"]["written"] == 3


@pytest.mark.slow
def test_rbd_never_writes_over_an_image_it_did_not_create(trace, ceph_env, tmp_path):
    assert tool(ceph_env, "rbd", "create", "--size", "1M", "rbd/users-image").returncode == 0
    with pytest.raises(ForeignDataError, match="rbd image rbd/users-image was not created by trainio"):
        replay_fio(trace, "rbd:rbd/users-image", tmp_path / "w1", no_stall=True)
    meta = tool(ceph_env, "rbd", "image-meta", "list", "rbd/users-image").stdout.decode()
    assert "trainio" not in meta
    assert replay_fio(trace, "rbd:rbd/trainio-own", tmp_path / "w2", no_stall=True).bytes == 8700


@pytest.mark.slow
def test_s3_lays_out_under_its_own_prefix_and_never_replaces_a_users_object(trace, ceph_env):
    endpoint = ceph_env["TRAINIO_S3_ENDPOINT"]
    client = s3_client(endpoint)
    client.create_bucket(Bucket="userbkt")
    client.put_object(Bucket="userbkt", Key="train/a.jpg", Body=b"u" * 20_000)  # the traced key, unprefixed
    result = replay_s3(trace, endpoint, "userbkt", no_stall=True)
    assert result.bytes == 8700 and result.details["objects_uploaded"] == 3
    assert client.get_object(Bucket="userbkt", Key="train/a.jpg")["Body"].read() == b"u" * 20_000
    client.create_bucket(Bucket="userbkt2")
    client.put_object(Bucket="userbkt2", Key="trainio-data/val/c.jpg", Body=b"mine")  # where trainio's layout goes
    with pytest.raises(ForeignDataError, match="userbkt2/trainio-data/ holds data trainio did not write"):
        replay_s3(trace, endpoint, "userbkt2", no_stall=True)
    assert client.get_object(Bucket="userbkt2", Key="trainio-data/val/c.jpg")["Body"].read() == b"mine"
    listed = client.list_objects_v2(Bucket="userbkt2")["Contents"]
    assert [item["Key"] for item in listed] == ["trainio-data/val/c.jpg"]
