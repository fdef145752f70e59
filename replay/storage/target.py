"""The one target grammar of the commands that work on real storage.

    DIR                a directory: a mounted file system or a local folder
    rbd:POOL/IMAGE     a Ceph RBD image
    rados:POOL         a Ceph pool
    cephfs:/PATH       a folder inside CephFS, reached through libcephfs (no mount)
    rgw:URL/BUCKET     a bucket of an S3 endpoint (Ceph RGW, MinIO, AWS); s3:URL/BUCKET is the same
    s3://BUCKET/PREFIX a key prefix of a bucket, the endpoint given apart (--endpoint)

Each command names the kinds it takes (``accepts``); any other target is a one-line
:class:`TargetError` that says what the command takes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from trainio.tracefile.redact import Redactor

DIRECTORY, RBD, RADOS, CEPHFS, RGW = "directory", "rbd", "rados", "cephfs", "rgw"
SYNTAX = {
    DIRECTORY: "DIR",
    RBD: "rbd:POOL/IMAGE",
    RADOS: "rados:POOL",
    CEPHFS: "cephfs:/PATH",
    RGW: "rgw:http://HOST:PORT/BUCKET (or s3:..., s3://BUCKET/PREFIX)",
}
"""Each kind's spelling, in the order the commands list them."""
SCHEMES = {"rbd": RBD, "rados": RADOS, "cephfs": CEPHFS, "rgw": RGW, "s3": RGW}


class TargetError(ValueError):
    """A target that names no storage trainio knows, or a kind the command does not take; the message
    carries the text."""


@dataclass(frozen=True)
class Target:
    kind: str
    """``directory``, ``rbd``, ``rados``, ``cephfs`` or ``rgw`` (an S3 endpoint, ``rgw:`` or ``s3:``)."""
    text: str
    """As the user wrote it, with any secret in it (a URL's password, a signature) redacted: it is
    printed and written into results and profiles."""
    path: str = ""
    """``directory``: the path as given; ``cephfs``: the folder inside the file system (normalised)."""
    pool: str = ""
    image: str = ""
    endpoint: str = ""
    """``rgw``: ``http(s)://HOST:PORT`` (empty for ``s3://BUCKET/PREFIX`` until :func:`with_endpoint`)."""
    bucket: str = ""
    prefix: str = ""
    """``rgw``: the key prefix ``s3://BUCKET/PREFIX`` names (ending in ``/``), else empty."""

    @property
    def directory(self) -> Path:
        """``directory``: the absolute path (``~`` expanded)."""
        return Path(self.path).expanduser().absolute()

    def directory_kind(self) -> str:
        """``directory``: what is there, ``missing``, ``directory`` or ``other``; :class:`TargetError`
        when the path cannot even be looked at (a name too long, a folder on the way not searchable)."""
        try:
            path = self.directory
            return "directory" if path.is_dir() else "other" if path.exists() else "missing"
        except (OSError, RuntimeError) as exc:  # RuntimeError: a ~user that does not exist
            raise TargetError(f"target(={self.text!r}): {getattr(exc, 'strerror', None) or exc}") from exc


def with_endpoint(target: Target, endpoint: str | None) -> Target:
    """An S3 target with its endpoint: the one it names, else ``endpoint`` (--endpoint);
    :class:`TargetError` when it has none, or two."""
    if target.kind != RGW:
        return target
    if target.endpoint and endpoint and endpoint.rstrip("/") != target.endpoint:
        raise TargetError(f"target(={target.text!r}) names its endpoint; --endpoint {endpoint} says another")
    if target.endpoint:
        return target
    url = urlsplit(endpoint or "")
    if url.scheme not in ("http", "https") or not url.netloc:
        raise TargetError(f"target(={target.text!r}) needs --endpoint http(s)://HOST:PORT (or TRAINIO_S3_ENDPOINT)")
    return replace(target, endpoint=f"{url.scheme}://{url.netloc}")


def expected(accepts: Iterable[str]) -> str:
    """``DIR, rados:POOL or cephfs:/PATH``: the kinds a command takes, as a user writes them."""
    spelled = [syntax for kind, syntax in SYNTAX.items() if kind in set(accepts)]
    return spelled[0] if len(spelled) == 1 else f"{', '.join(spelled[:-1])} or {spelled[-1]}"


def parse_target(text: str, accepts: Iterable[str] = tuple(SYNTAX), *, command: str = "this command") -> Target:
    """Parse ``text`` (see the module docstring); raises :class:`TargetError` when it is malformed or of
    a kind not in ``accepts`` (``command`` names the command in that message)."""
    target = replace(_parse(text), text=Redactor().text(text))  # the text is shown and written: no secrets
    accepts = tuple(accepts)
    if target.kind not in accepts:
        raise TargetError(
            f"target(={text!r}) is {SYNTAX[target.kind]}, which {command} does not take: expected {expected(accepts)}"
        )
    return target


def _parse(text: str) -> Target:
    scheme, colon, rest = text.partition(":")
    kind = SCHEMES.get(scheme) if colon else None
    if kind == RBD:
        pool, slash, image = rest.partition("/")
        if not pool or not slash or not image or "/" in image:
            raise TargetError(f"target(={text!r}): expected rbd:POOL/IMAGE")
        return Target(RBD, text, pool=pool, image=image)
    if kind == RADOS:
        if not rest or "/" in rest:
            raise TargetError(f"target(={text!r}): expected rados:POOL")
        return Target(RADOS, text, pool=rest)
    if kind == CEPHFS:
        folder = posixpath.normpath(rest) if rest else ""
        if not folder.startswith("/") or folder == "/" or folder.startswith("//"):
            raise TargetError(f"target(={text!r}): expected cephfs:/PATH (a folder inside the file system, not /)")
        return Target(CEPHFS, text, path=folder)
    if kind == RGW and rest.startswith("//"):
        bucket, _, prefix = rest[2:].partition("/")
        prefix = prefix.strip("/")
        if not bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
            raise TargetError(f"target(={text!r}): expected s3://BUCKET or s3://BUCKET/PREFIX")
        return Target(RGW, text, bucket=bucket, prefix=f"{prefix}/" if prefix else "")
    if kind == RGW:
        url = urlsplit(rest)
        bucket = url.path.strip("/")
        if url.scheme not in ("http", "https") or not url.netloc or not bucket or "/" in bucket:
            raise TargetError(f"target(={text!r}): expected {scheme}:http://HOST:PORT/BUCKET")
        return Target(RGW, text, endpoint=f"{url.scheme}://{url.netloc}", bucket=bucket)
    if not text.strip():
        raise TargetError(f"target is empty: expected {expected(SYNTAX)}")
    return Target(DIRECTORY, text, path=text)
