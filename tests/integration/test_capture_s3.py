"""Object reads through boto3 against a real Ceph RGW are recorded as object operations."""

from __future__ import annotations

import sys

from tests.helpers import run_cli, summary_json
from trainio.tracefile import open_trace

SCRIPT = """
import os, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["TRAINIO_S3_ENDPOINT"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
s3.create_bucket(Bucket="capture-test")
for i in range(5):
    s3.put_object(Bucket="capture-test", Key=f"train/{i}.bin", Body=os.urandom(50_000 + i))
total = 0
for i in range(5):
    total += len(s3.get_object(Bucket="capture-test", Key=f"train/{i}.bin")["Body"].read())
part = s3.get_object(Bucket="capture-test", Key="train/0.bin", Range="bytes=100-1099")["Body"].read()
print(total, len(part))
"""


def test_boto3_gets_become_object_ops_with_bucket_key_range_and_bytes(tmp_path, ceph):
    _, env = ceph
    script = tmp_path / "s3_reader.py"
    script.write_text(SCRIPT)
    trace = tmp_path / "trace"
    proc = run_cli("tracer", "capture", "--out", trace, "--", sys.executable, script, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(5 * 50_000 + 10), "1000"]
    gets = [r for r in open_trace(trace).io.to_pylist() if r["op"] == "get"]
    assert [(g["bucket"], g["key"], g["bytes_returned"]) for g in gets[:5]] == [
        ("capture-test", f"train/{i}.bin", 50_000 + i) for i in range(5)
    ]
    ranged = gets[5]
    assert (ranged["offset"], ranged["bytes_requested"], ranged["bytes_returned"]) == (100, 1000, 1000)
    assert all(g["kind"] == "object" and g["io_class"] == "data" and g["duration_ns"] > 0 for g in gets)
    digest = summary_json(trace)
    assert digest["bytes_read"] == 5 * 50_000 + 10 + 1000
    assert digest["data_roots"] == ["s3://capture-test"]
    manifest = (trace / "manifest.json").read_text()
    assert env["AWS_SECRET_ACCESS_KEY"] not in manifest and env["AWS_ACCESS_KEY_ID"] not in manifest
    assert open_trace(trace).manifest["env"]["AWS_SECRET_ACCESS_KEY"] == "<redacted>"
