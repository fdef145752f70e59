"""Object-store reads through boto3/botocore (S3, Ceph RGW), recorded as object operations."""

from __future__ import annotations

from types import ModuleType

from trainio.tracer.clock import now_ns
from trainio.tracer.patches import Patches
from trainio.tracer.recorder import Recorder

OPERATIONS = {
    "GetObject": "get",
    "HeadObject": "head",
    "ListObjects": "list",
    "ListObjectsV2": "list",
    "PutObject": "put",
}


def _byte_range(text: str | None) -> tuple[int | None, int | None]:
    """``bytes=A-B`` -> (A, B-A+1); anything else -> (None, None)."""
    if not text or not text.startswith("bytes="):
        return None, None
    first, _, last = text[6:].partition("-")
    try:
        start = int(first)
        return start, (int(last) - start + 1) if last else None
    except ValueError:
        return None, None


def patch_client(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    cls = module.BaseClient
    original = cls._make_api_call

    def _make_api_call(self, operation_name, api_params):
        op = OPERATIONS.get(operation_name)
        if op is None:
            return original(self, operation_name, api_params)
        bucket, key = api_params.get("Bucket"), api_params.get("Key")
        offset, requested = _byte_range(api_params.get("Range"))
        path = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
        t0 = now_ns()
        try:
            response = original(self, operation_name, api_params)
        except Exception:
            rec.object_op(op, path, bucket, key, offset, requested, None, -1, t0, now_ns())
            raise
        returned = response.get("ContentLength") if op == "get" else None
        rec.object_op(op, path, bucket, key, offset, requested, returned, 0, t0, now_ns())
        return response

    patches.replace(cls, "_make_api_call", _make_api_call)
