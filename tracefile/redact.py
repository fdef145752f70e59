"""What may authenticate is replaced by ``<redacted>`` before it is written anywhere.

One set of rules for every writer of command lines, environments, paths and targets (the trace's
manifest, per-process facts, Chrome export, summary, replay results, calibration profiles), so
that the capture and the analysis side redact alike. Stdlib only: the capture loads it at start.

A value is redacted when its *name* says it is secret (an option ``--api-key X``, ``--password=X``,
``db.password=X``, an environment variable, a URL query parameter such as ``X-Amz-Signature``),
or when its *shape* does: credentials in a URL (``https://user:pw@host``), a bearer token, a JWT,
a provider's token format (GitHub, Hugging Face, AWS, Slack, OpenAI, Google), a private key, a
long random-looking hex or base64 string; and wherever the value of a redacted environment
variable appears again (``--token $HF_TOKEN``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping

REDACTED = "<redacted>"

SECRET_WORDS = (
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "APIKEY",
    "ACCESSKEY",
    "PRIVATEKEY",
    "SIGNATURE",
    "COOKIE",
)
"""A name containing one of these anywhere is secret (``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``)."""
SECRET_PARTS = frozenset(
    {"KEY", "KEYS", "PASS", "PWD", "PW", "PAT", "AUTH", "AUTHN", "AUTHZ", "SIG", "CRED", "CREDS", "JWT", "OTP", "SAS"}
)
"""A name with one of these as a whole part is secret (``MYSQL_PWD``, ``GITHUB_PAT``, ``HF_AUTH``, ``sig``)."""
NOT_SECRET = frozenset({"PWD", "OLDPWD"})
"""The shell's working directories, whose names only look like passwords."""

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_PART = re.compile(r"[^A-Z0-9]+")
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@")
_QUERY_PARAM = re.compile(r"([?&;#])([^=&;#\s]+)=([^&;#\s]*)")
_BEARER = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_TOKEN_SHAPES = re.compile(
    "|".join(
        (
            r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",  # JWT
            r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub
            r"\bgithub_pat_[A-Za-z0-9_]{30,}",
            r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face
            r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",  # AWS access key id
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack
            r"\bsk-[A-Za-z0-9_-]{20,}",  # OpenAI-style
            r"\bAIza[0-9A-Za-z_-]{35}",  # Google API key
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
        )
    ),
    re.DOTALL,
)
_HEX = re.compile(r"[0-9a-fA-F]{32,}")
_BASE64 = re.compile(r"[A-Za-z0-9+/_=-]{32,}")
_ASSIGNMENT = re.compile(r"(-{0,2}[+~]?[A-Za-z_][A-Za-z0-9_.-]*)=(.*)", re.DOTALL)
"""``--opt=value``, ``db.password=value``, ``NAME=value``: an argument that names its value."""
MIN_ECHOED_SECRET = 6
"""A redacted environment value shorter than this is not searched for elsewhere (``1``, ``true``)."""


def normal_name(name: str) -> str:
    """``--api-key``, ``apiKey``, ``API_KEY`` -> ``API_KEY``: how names are compared."""
    return "_".join(p for p in _PART.split(_CAMEL.sub(r"\1_\2", name.lstrip("-+~")).upper()) if p)


def secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    """Whether an option, variable or parameter called ``name`` holds a secret; ``extra``: more
    secret names, as ``normal_name`` writes them."""
    normal = normal_name(name)
    parts = normal.split("_")
    if normal in extra:
        return True
    if not normal or normal in NOT_SECRET or parts[0] == "NO":  # --no-auth takes no value
        return False
    return (
        any(word in normal.replace("_", "") for word in SECRET_WORDS)
        or any(p in SECRET_PARTS or p.endswith("KEY") for p in parts)
        or any(p.startswith(("AUTH", "PGPASS")) and not p.startswith("AUTHOR") for p in parts)
        or "AUTHORIZATION" in parts
    )


def _entropy(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def looks_random(value: str) -> bool:
    """A whole value that is a long hex or base64 string with the entropy of a key, not a word or a path."""
    if _HEX.fullmatch(value):
        return _entropy(value) >= 3.0
    return (
        bool(_BASE64.fullmatch(value))
        and not value.startswith("/")
        and any(c.isdigit() for c in value)
        and _entropy(value) >= 4.5
    )


class Redactor:
    """The rules, plus the names a user added (``tracer capture --redact NAME``) and the values of the
    environment's secrets, so that they are found again where they are repeated."""

    def __init__(self, names: Iterable[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.names = frozenset(filter(None, map(normal_name, names)))
        self._echoes: tuple[tuple[str, str], ...] = ()
        if env:
            hidden = {v: self.value(k, v) for k, v in env.items() if len(v) >= MIN_ECHOED_SECRET}
            self._echoes = tuple(sorted(((v, r) for v, r in hidden.items() if r != v), key=lambda e: -len(e[0])))

    def text(self, text: str) -> str:
        """Secrets inside free text: a path, a URL, a target, one argument."""
        for echo, redacted in self._echoes:
            if echo in text:
                text = text.replace(echo, redacted)
        text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
        text = _QUERY_PARAM.sub(self._param, text)
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
        return _TOKEN_SHAPES.sub(REDACTED, text)

    def _param(self, match: re.Match) -> str:
        sep, name, value = match.groups()
        return f"{sep}{name}={REDACTED}" if value and secret_name(name, self.names) else match.group(0)

    def value(self, name: str, value: str) -> str:
        """A value given under a name (an environment variable, ``--opt=value``, ``key=value``)."""
        if secret_name(name, self.names) or looks_random(value):
            return REDACTED
        return self.text(value)

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``env``, sorted by name, with secret values redacted."""
        return {k: self.value(k, v) for k, v in sorted(env.items())}

    def argv(self, argv: Iterable[str]) -> list[str]:
        """A command line with the values of secret options redacted (``--password pw``,
        ``--api-key=k``, ``db.password=pw``) and secrets found by shape in any argument."""
        out: list[str] = []
        hide_next = False
        for arg in argv:
            arg = str(arg)
            if hide_next and not (arg.startswith("-") and len(arg) > 1):
                out.append(REDACTED)
                hide_next = False
                continue
            hide_next = False
            assignment = _ASSIGNMENT.fullmatch(arg)
            if assignment:
                out.append(f"{assignment[1]}={self.value(assignment[1], assignment[2])}")
            elif arg.startswith("-") and len(arg) > 1 and secret_name(arg, self.names):
                out.append(arg)
                hide_next = True
            else:
                out.append(REDACTED if looks_random(arg) else self.text(arg))
        return out
