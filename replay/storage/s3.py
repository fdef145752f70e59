"""The S3 client (Ceph RGW, MinIO, AWS S3), with boto3: clients, the objects of a data set, timed GETs.

boto3 is imported on use: it is an optional dependency of trainio. Credentials come from the
arguments or ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` and never reach a message.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import (
    FILE,
    MANIFEST_NAME,
    MISSING,
    SHOWN,
    Found,
    Inspection,
    LayoutPlan,
    read_manifest,
)
from trainio.replay.storage.seeded import PART_BYTES, seeded_part, seeded_parts

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
"""Default time to wait for the endpoint to accept a connection and, between bytes, to answer."""
TOTAL_ATTEMPTS = 2
"""botocore attempts per request, the first included (one retry): an endpoint that accepts and never
answers fails after 2 x (connect + read) timeouts."""
UPLOAD_THREADS = 8
DELETE_BATCH = 1000
"""Keys one DeleteObjects request takes at most."""
SINGLE_PUT_MAX = 64 * 2**20
MAX_PARTS = 10_000
BODY_CHUNK = 2**20


class S3CredentialsError(ReplayError):
    """No S3 credentials in the arguments or the environment."""


class S3UnreachableError(ReplayError):
    """The endpoint cannot be reached (connection refused, timed out); ``reason`` is botocore's."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"cannot reach S3 endpoint {endpoint}: {reason}")
        self.reason = reason


class S3RequestError(ReplayError):
    """A request the endpoint refused or that failed on the way."""


def boto() -> tuple[ModuleType, ModuleType]:
    """boto3 and botocore, imported on use."""
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError as exc:
        raise ReplayError(f"S3 needs boto3, which is not installed ({exc}): pip install boto3") from exc
    return boto3, botocore


def boto_version() -> str:
    """``boto3 1.x``: the client library, for a result's or a profile's source."""
    return f"boto3 {boto()[0].__version__}"


def new_session() -> Any:
    """A boto3 session: its loaded service models make each further client cheap; not thread-safe."""
    return boto()[0].session.Session()


def credentials(access_key: str | None = None, secret_key: str | None = None) -> tuple[str, str]:
    """The keys given, else ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``."""
    access = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        raise S3CredentialsError(
            "no S3 credentials: pass access_key/secret_key or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return access, secret


@dataclass(frozen=True)
class Timeouts:
    """How long a request may wait for the endpoint: to connect, and for each answer (seconds)."""

    connect_s: float = CONNECT_TIMEOUT_S
    read_s: float = READ_TIMEOUT_S

    def __post_init__(self) -> None:
        for name, value in (("connect_s", self.connect_s), ("read_s", self.read_s)):
            if not 0 < value < math.inf:
                raise ValueError(f"{name}(={value}) must be a number of seconds > 0")

    @property
    def worst_s(self) -> float:
        """The longest one request can take to fail: every attempt timing out."""
        return TOTAL_ATTEMPTS * (self.connect_s + self.read_s)


DEFAULT_TIMEOUTS = Timeouts()


def s3_client(
    endpoint: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    *,
    pool: int = 10,
    session: Any = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> Any:
    """A boto3 S3 client for ``endpoint`` (path-style addressing, bounded ``timeouts``, one retry)
    with ``pool`` connections, made from ``session`` (a new one by default)."""
    _, botocore = boto()
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"endpoint(={endpoint!r}) must be an http:// or https:// URL")
    access, secret = credentials(access_key, secret_key)
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        connect_timeout=timeouts.connect_s,
        read_timeout=timeouts.read_s,
        retries={"total_max_attempts": TOTAL_ATTEMPTS, "mode": "standard"},
        max_pool_connections=max(pool, 1),
    )
    return (session or new_session()).client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=config,
    )


def _put(client: Any, bucket: str, key: str, name: str, size: int, seed: int) -> None:
    """Upload ``key`` with ``name``'s seeded bytes (the bytes of the file of that name in a folder)."""
    if size <= SINGLE_PUT_MAX:
        client.put_object(Bucket=bucket, Key=key, Body=b"".join(part for _, part in seeded_parts(name, size, seed)))
        return
    if -(-size // PART_BYTES) > MAX_PARTS:
        raise ReplayError(f"object {key!r} of {size} bytes needs more than {MAX_PARTS} parts of {PART_BYTES} bytes")
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    try:
        for number, start in enumerate(range(0, size, PART_BYTES), 1):
            body = seeded_part(name, start, min(PART_BYTES, size - start), seed)
            etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise


class S3Store:
    """A layout root under a key prefix of a bucket (:mod:`trainio.replay.storage.layout`): the keys
    ``prefix + name``, with the layout manifest as one more object. A missing bucket is created when
    the layout is written."""

    def __init__(self, client: Any, endpoint: str, bucket: str, prefix: str) -> None:
        self.client, self.endpoint, self.bucket, self.prefix = client, endpoint, bucket, prefix
        self.root = f"{endpoint}/{bucket}/{prefix}"
        self.bucket_exists = True

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        errors = boto()[1].exceptions
        try:
            yield
        except errors.ConnectionError as exc:
            raise S3UnreachableError(self.endpoint, str(exc)) from exc
        except errors.ClientError as exc:
            error = exc.response.get("Error", {})
            raise ReplayError(
                f"S3 endpoint {self.endpoint} refused to {what} bucket {self.bucket!r}: "
                f"{error.get('Code') or type(exc).__name__} {error.get('Message', '')}".rstrip()
            ) from exc
        except errors.BotoCoreError as exc:
            raise ReplayError(f"S3 endpoint {self.endpoint}, bucket {self.bucket!r}: {exc}") from exc

    def _listing(self) -> dict[str, int]:
        """Key (less the prefix) -> bytes of every object under the prefix."""
        present: dict[str, int] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            present.update((item["Key"][len(self.prefix) :], item["Size"]) for item in page.get("Contents", []))
        return present

    def inspect(self, names: Iterable[str]) -> Inspection:
        errors = boto()[1].exceptions
        with self._errors("open"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except errors.ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
                self.bucket_exists = False
                return Inspection(self.root, None, (), {name: Found(MISSING) for name in names})
            present = self._listing()
            manifest = None
            if MANIFEST_NAME in present:
                body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + MANIFEST_NAME)["Body"]
                manifest = read_manifest(body.read(), f"{self.root}{MANIFEST_NAME}")
        others = tuple(sorted(key for key in present if key != MANIFEST_NAME))[: SHOWN + 1]
        found = {name: Found(FILE, present[name]) if name in present else Found(MISSING) for name in names}
        return Inspection(self.root, manifest, others, found)

    def write(self, plan: LayoutPlan, sizes: dict[str, int], seed: int) -> None:
        with self._errors("write to"):
            if not self.bucket_exists:
                self.client.create_bucket(Bucket=self.bucket)
                self.bucket_exists = True
            key = self.prefix + MANIFEST_NAME
            self.client.put_object(Bucket=self.bucket, Key=key, Body=plan.manifest.text().encode())
            with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
                jobs = [
                    pool.submit(_put, self.client, self.bucket, self.prefix + name, name, sizes[name], seed)
                    for name in plan.write
                ]
                for job in jobs:
                    job.result()
            self.client.put_object(Bucket=self.bucket, Key=key, Body=plan.done.text().encode())

    def remove(self, names: Iterable[str]) -> int:
        with self._errors("delete from"):
            present = self._listing()
            doomed = [name for name in [*names, MANIFEST_NAME] if name in present]
            for start in range(0, len(doomed), DELETE_BATCH):
                batch = [{"Key": self.prefix + name} for name in doomed[start : start + DELETE_BATCH]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return sum(present[name] for name in doomed)


class S3Reader:
    """Reads a layout's objects (names under ``prefix``) with GETs: a client of its own, made on first
    use (after a fork: a connection must not cross one)."""

    def __init__(self, endpoint: str, bucket: str, prefix: str, timeouts: Timeouts, session: Any = None) -> None:
        self.endpoint, self.bucket, self.prefix, self.timeouts, self.session = (
            endpoint,
            bucket,
            prefix,
            timeouts,
            session,
        )
        self.client: Any = None

    def open(self, name: str) -> None:
        """An object store has no opens: nothing to do."""

    def close(self, name: str) -> None:
        """... nor closes."""

    def get(self, name: str, offset: int, length: int, whole: bool) -> int:
        """Bytes one GET returned: the object, or ``length`` bytes from ``offset``."""
        if self.client is None:
            self.client = s3_client(self.endpoint, pool=1, session=self.session, timeouts=self.timeouts)
        ranged = None if whole else f"bytes={offset}-{offset + length - 1}"
        return timed_get(self.client, self.bucket, self.prefix + name, ranged).bytes

    def shutdown(self) -> None:
        self.client = None


@dataclass(frozen=True)
class TimedGet:
    first_byte_s: float
    total_s: float
    """From the call to the end of the body."""
    bytes: int


def timed_get(client: Any, bucket: str, key: str, range_header: str | None = None) -> TimedGet:
    """One GET, its body read to the end and dropped. Raises :class:`S3UnreachableError` when the endpoint
    cannot be reached, :class:`S3RequestError` when the GET failed otherwise."""
    _, botocore = boto()
    kwargs = {"Bucket": bucket, "Key": key}
    if range_header:
        kwargs["Range"] = range_header
    try:
        start = time.perf_counter()
        response = client.get_object(**kwargs)
        first = time.perf_counter()
        nbytes = 0
        body = response["Body"]
        try:
            for chunk in body.iter_chunks(BODY_CHUNK):
                nbytes += len(chunk)
        finally:
            body.close()
    except botocore.exceptions.ConnectionError as exc:
        raise S3UnreachableError(client.meta.endpoint_url, str(exc)) from exc
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise S3RequestError(f"GET {key} {range_header or '(whole)'}: {exc}") from exc
    return TimedGet(first - start, time.perf_counter() - start, nbytes)
