"""Run a callback right after a module is imported (used to patch torch and botocore lazily)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType

from trainio.tracer.messages import tell

Callback = Callable[[ModuleType], None]


class _HookLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, callback: Callback) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _call(self._callback, module)


class PostImportFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that only wraps the loader of the watched modules."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Callback] = {}
        self._busy: set[str] = set()

    def find_spec(self, name, path, target=None):
        callback = self.callbacks.get(name)
        if callback is None or name in self._busy:
            return None
        self._busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _HookLoader(spec.loader, callback)
        return spec


def _call(callback: Callback, module: ModuleType) -> None:
    """Fail open: a hook that cannot patch a module must not break the user's import."""
    try:
        callback(module)
    except Exception as exc:  # noqa: BLE001 - the user's import must succeed regardless
        tell(f"trainio: cannot instrument {module.__name__}: {exc!r} (training continues)")


FINDER = PostImportFinder()


def when_imported(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once ``name`` is imported (now, if it already is)."""
    if name in sys.modules:
        _call(callback, sys.modules[name])
        return
    FINDER.callbacks[name] = callback
    if FINDER not in sys.meta_path:
        sys.meta_path.insert(0, FINDER)


def remove() -> None:
    FINDER.callbacks.clear()
    if FINDER in sys.meta_path:
        sys.meta_path.remove(FINDER)
