"""The one record of what trainio replaced in the traced process, so that it can all be put back."""

from __future__ import annotations


class Patches:
    """Attributes replaced on modules and classes, newest last; ``restore`` undoes them in reverse."""

    def __init__(self) -> None:
        self._originals: list[tuple[object, str, object]] = []

    def replace(self, owner: object, name: str, value: object) -> object:
        """Set ``owner.name = value``; return the original."""
        original = getattr(owner, name)
        self._originals.append((owner, name, original))
        setattr(owner, name, value)
        return original

    def restore(self) -> None:
        while self._originals:
            owner, name, original = self._originals.pop()
            setattr(owner, name, original)
