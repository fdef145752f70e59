"""Profiles are TOML files (storage profiles, CPU profiles): reading one, any problem an error naming it."""

from __future__ import annotations

from pathlib import Path

import tomllib


def read_toml(path: Path, what: str, error: type[Exception]) -> dict:
    """The tables of ``path``; an unreadable or malformed file raises ``error`` ("cannot read WHAT PATH: ...")."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise error(f"cannot read {what} {path}: not UTF-8 text (byte {err.start}): not a {what}") from err
    except tomllib.TOMLDecodeError as err:
        raise error(f"cannot read {what} {path}: {err}") from err
