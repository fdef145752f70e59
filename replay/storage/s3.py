"""The S3 client (Ceph RGW, MinIO, AWS S3), with boto3: clients, the objects of a data set, timed GETs.

boto3 is imported on use: it is an optional dependency of trainio. Credentials come from the
arguments or ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` and never reach a message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.seeded import PART_BYTES, seeded_part, seeded_parts

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 2
"""botocore attempts per request (the first and one retry): an unreachable endpoint fails fast."""
UPLOAD_THREADS = 8
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


def s3_client(
    endpoint: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    *,
    pool: int = 10,
    session: Any = None,
) -> Any:
    """A boto3 S3 client for ``endpoint`` (path-style addressing, short connect timeout, one retry)
    with ``pool`` connections, made from ``session`` (a new one by default)."""
    _, botocore = boto()
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"endpoint(={endpoint!r}) must be an http:// or https:// URL")
    access, secret = credentials(access_key, secret_key)
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
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


def _client_error(endpoint: str, bucket: str, what: str, exc: BaseException) -> ReplayError:
    error = getattr(exc, "response", {}).get("Error", {})
    code = error.get("Code") or type(exc).__name__
    return ReplayError(f"S3 endpoint {endpoint} refused to {what} bucket {bucket!r}: {code} {error.get('Message', '')}")


def _put(client: Any, bucket: str, key: str, size: int, seed: int) -> None:
    if size <= SINGLE_PUT_MAX:
        client.put_object(Bucket=bucket, Key=key, Body=b"".join(part for _, part in seeded_parts(key, size, seed)))
        return
    if -(-size // PART_BYTES) > MAX_PARTS:
        raise ReplayError(f"object {key!r} of {size} bytes needs more than {MAX_PARTS} parts of {PART_BYTES} bytes")
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    try:
        for number, start in enumerate(range(0, size, PART_BYTES), 1):
            body = seeded_part(key, start, min(PART_BYTES, size - start), seed)
            etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise


def _listing_prefix(keys: Iterable[str]) -> str:
    prefix = os.path.commonprefix(list(keys))
    return prefix[: prefix.rfind("/") + 1]


@dataclass(frozen=True)
class UploadSummary:
    objects: int
    bytes: int
    uploaded: int
    uploaded_bytes: int


def ensure_objects(
    client: Any,
    endpoint: str,
    bucket: str,
    sizes: dict[str, int],
    *,
    upload: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> UploadSummary:
    """Make ``bucket`` hold every object of ``sizes`` (key -> bytes), creating the bucket if need
    be; objects present with the right size are kept. With ``upload=False`` a missing object is
    an error. Unreachable endpoints and refusals raise :class:`ReplayError` naming the endpoint."""
    _, botocore = boto()
    errors = botocore.exceptions
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except errors.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404 or not upload:
                raise _client_error(endpoint, bucket, "open", exc) from None
            client.create_bucket(Bucket=bucket)
        present: dict[str, int] = {}
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=_listing_prefix(sizes))
        for page in pages:
            present.update((item["Key"], item["Size"]) for item in page.get("Contents", []))
        missing = sorted(key for key, size in sizes.items() if present.get(key) != size)
        if missing and not upload:
            raise ReplayError(
                f"bucket {bucket!r} at {endpoint} lacks {len(missing)} of the {len(sizes)} objects to read "
                f"(first: {missing[0]!r}); upload them first"
            )
        total = sum(sizes[key] for key in missing)
        if missing and progress:
            progress(f"uploading {len(missing)} objects ({total / 1e6:,.1f} MB) to {bucket}")
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            for future in [pool.submit(_put, client, bucket, key, sizes[key], seed) for key in missing]:
                future.result()
    except errors.ConnectionError as exc:
        raise S3UnreachableError(endpoint, str(exc)) from exc
    except errors.ClientError as exc:
        raise _client_error(endpoint, bucket, "write to", exc) from exc
    except errors.BotoCoreError as exc:
        raise ReplayError(f"S3 endpoint {endpoint}, bucket {bucket!r}: {exc}") from exc
    return UploadSummary(len(sizes), sum(sizes.values()), len(missing), total)


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
