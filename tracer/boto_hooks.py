"""Object-store reads through botocore's clients, recorded as object operations: boto3 (S3, Ceph
RGW) and aiobotocore's asynchronous client (which fsspec's s3fs uses)."""

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


def byte_range(text: str | None) -> tuple[int | None, int | None]:
    """``bytes=A-B`` -> (A, B-A+1); anything else -> (None, None)."""
    if not text or not text.startswith("bytes="):
        return None, None
    first, _, last = text[6:].partition("-")
    try:
        start = int(first)
        return start, (int(last) - start + 1) if last else None
    except ValueError:
        return None, None


class _Call:
    """One API call of a botocore client, recorded when it returns or raises."""

    __slots__ = ("op", "bucket", "key", "offset", "requested", "path", "t0")

    def __init__(self, op: str, api_params: dict) -> None:
        self.op = op
        self.bucket, self.key = api_params.get("Bucket"), api_params.get("Key")
        self.offset, self.requested = byte_range(api_params.get("Range"))
        self.path = f"s3://{self.bucket}/{self.key}" if self.key is not None else f"s3://{self.bucket}"
        self.t0 = now_ns()

    def done(self, rec: Recorder, response: dict | None) -> None:
        returned = response.get("ContentLength") if response is not None and self.op == "get" else None
        result = -1 if response is None else 0
        rec.object_op(
            self.op, self.path, self.bucket, self.key, self.offset, self.requested, returned, result, self.t0, now_ns()
        )


def patch_client(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    cls = module.BaseClient
    original = cls._make_api_call

    def _make_api_call(self, operation_name, api_params):
        op = OPERATIONS.get(operation_name)
        if op is None:
            return original(self, operation_name, api_params)
        call = _Call(op, api_params)
        try:
            response = original(self, operation_name, api_params)
        except Exception:
            call.done(rec, None)
            raise
        call.done(rec, response)
        return response

    rec.note_client("boto3")
    patches.replace(cls, "_make_api_call", _make_api_call)


def patch_aio_client(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    """aiobotocore (s3fs, aioboto3): the same calls, awaited."""
    cls = module.AioBaseClient
    original = cls._make_api_call

    async def _make_api_call(self, operation_name, api_params):
        op = OPERATIONS.get(operation_name)
        if op is None:
            return await original(self, operation_name, api_params)
        call = _Call(op, api_params)
        try:
            response = await original(self, operation_name, api_params)
        except Exception:
            call.done(rec, None)
            raise
        call.done(rec, response)
        return response

    rec.note_client("aiobotocore (s3fs)")
    patches.replace(cls, "_make_api_call", _make_api_call)
