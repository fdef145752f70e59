"""Object reads through the Amazon S3 Connector for PyTorch (``s3torchconnector``), whose GETs run in
its native client: each stream of chunks it opens is one GET, recorded with the bytes taken from it
when it ends (exhausted, or dropped by its reader)."""

from __future__ import annotations

from types import ModuleType

from trainio.tracer.clock import now_ns
from trainio.tracer.patches import Patches
from trainio.tracer.recorder import Recorder


class _CountedStream:
    """A GetObjectStream that counts what is taken from it; records its GET once, at its end."""

    __slots__ = ("_stream", "_rec", "_bucket", "_key", "_offset", "_requested", "_t0", "_first_ns", "_bytes", "_open")

    def __init__(self, stream, rec: Recorder, bucket: str, key: str, start: int | None, end: int | None, t0: int):
        self._stream, self._rec, self._bucket, self._key = stream, rec, bucket, key
        self._offset = start
        self._requested = end - (start or 0) if end is not None else None
        self._t0, self._first_ns, self._bytes, self._open = t0, None, 0, True

    def __iter__(self):
        return self

    def __next__(self):
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._done(0)
            raise
        except Exception:
            self._done(-1)
            raise
        if self._first_ns is None:
            self._first_ns = now_ns()  # the response's first bytes: the GET's latency, as boto3's
        self._bytes += len(chunk)
        return chunk

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def _done(self, result: int) -> None:
        if self._open:
            self._open = False
            path = f"s3://{self._bucket}/{self._key}"
            end = self._first_ns if self._first_ns is not None else now_ns()
            returned = self._bytes if result == 0 or self._bytes else None
            self._rec.object_op(
                "get", path, self._bucket, self._key, self._offset, self._requested, returned, result, self._t0, end
            )

    def __del__(self) -> None:
        self._done(0)


def patch_s3client(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    cls = module.S3Client
    original = cls._get_object_stream

    def _get_object_stream(self, bucket: str, key: str, start: int | None = None, end: int | None = None):
        t0 = now_ns()
        return _CountedStream(original(self, bucket, key, start, end), rec, bucket, key, start, end, t0)

    rec.note_client("s3torchconnector")
    patches.replace(cls, "_get_object_stream", _get_object_stream)
