"""scripts/ceph-dev.sh: a real single-node Ceph in a temporary folder (RADOS, RGW, CephFS), then gone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from scripts.ceph_dev import DAEMONS, daemons_of, script
from tests.cephdev import cluster, require_ceph


def _run(args: list[str], env: dict, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, capture_output=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}: {proc.stderr!r}"
    return proc


@pytest.mark.slow
def test_a_dev_cluster_serves_rados_s3_and_cephfs_then_goes_away(tmp_path):
    require_ceph()
    with cluster(tmp_path) as (folder, env, base):
        _exercise(folder, env, base, tmp_path)


def _exercise(folder: Path, env: dict, base: int, tmp_path: Path) -> None:
    assert env["TRAINIO_S3_ENDPOINT"] == f"http://127.0.0.1:{base + 2}"
    assert env["CEPH_CONF"] == str(folder / "ceph.conf")
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env.keys()
    assert len(daemons_of(folder)) == len(DAEMONS)

    # A second `up` on a running cluster refuses and leaves it running.
    again = script("up", str(folder), "--ports", str(base), timeout=30)
    assert again.returncode != 0 and "already up" in again.stderr
    assert len(daemons_of(folder)) == len(DAEMONS)

    # RADOS: an object written and read back with the rados CLI.
    payload = os.urandom(256 * 1024)
    (tmp_path / "in.bin").write_bytes(payload)
    _run(["rados", "-p", "trainpool", "put", "trainio-object", str(tmp_path / "in.bin")], env)
    _run(["rados", "-p", "trainpool", "get", "trainio-object", str(tmp_path / "out.bin")], env)
    assert (tmp_path / "out.bin").read_bytes() == payload

    # RGW: a 100 KiB PUT and GET through boto3.
    s3 = boto3.client(
        "s3",
        endpoint_url=env["TRAINIO_S3_ENDPOINT"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"}, connect_timeout=10, read_timeout=20, retries={"max_attempts": 2}
        ),
    )
    body = os.urandom(100 * 1024)
    s3.create_bucket(Bucket="trainio-dev")
    s3.put_object(Bucket="trainio-dev", Key="sample/000001.jpg", Body=body)
    got = s3.get_object(Bucket="trainio-dev", Key="sample/000001.jpg")
    assert got["ContentLength"] == len(body) and got["Body"].read() == body

    # CephFS: the file system exists and its MDS is active.
    fs = _run(["ceph", "fs", "ls"], env, text=True).stdout
    assert "name: cephfs" in fs, fs
    assert "up:active" in _run(["ceph", "mds", "stat"], env, text=True).stdout

    health = _run(["ceph", "health"], env, text=True).stdout
    assert health.startswith("HEALTH_OK"), health
