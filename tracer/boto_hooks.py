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
    """One API call of a botocore client, recorded when its block ends (returned, or raised)."""

    __slots__ = ("rec", "op", "bucket", "key", "offset", "requested", "path", "t0", "response")

    def __init__(self, rec: Recorder, op: str, api_params: dict) -> None:
        self.rec, self.op = rec, op
        self.bucket, self.key = api_params.get("Bucket"), api_params.get("Key")
        self.offset, self.requested = byte_range(api_params.get("Range"))
        self.path = f"s3://{self.bucket}/{self.key}" if self.key is not None else f"s3://{self.bucket}"
        self.response: dict | None = None
        self.t0 = now_ns()

    def __enter__(self) -> _Call:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        response = None if exc_type is not None else self.response
        returned = response.get("ContentLength") if response is not None and self.op == "get" else None
        result = -1 if response is None else 0
        self.rec.object_op(
            self.op, self.path, self.bucket, self.key, self.offset, self.requested, returned, result, self.t0, now_ns()
        )


def patch_client(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    cls = module.BaseClient
    original = cls._make_api_call

    def _make_api_call(self, operation_name, api_params):
        op = OPERATIONS.get(operation_name)
        if op is None:
            return original(self, operation_name, api_params)
        with _Call(rec, op, api_params) as call:
            call.response = original(self, operation_name, api_params)
        return call.response

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
        with _Call(rec, op, api_params) as call:
            call.response = await original(self, operation_name, api_params)
        return call.response

    rec.note_client("s3fs")  # the schema's name; aioboto3 goes through the same client
    patches.replace(cls, "_make_api_call", _make_api_call)
