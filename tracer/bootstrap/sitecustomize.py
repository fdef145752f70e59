"""Injected by ``tracer capture`` (via PYTHONPATH) into every Python process of the traced run.

It starts the recorder, then runs the user's own ``sitecustomize`` if there is one, so that the
run behaves as it would untraced. trainio is imported from the package folder the capture names
(``TRAINIO_PACKAGE``), under its own name only: ``sys.path`` is not touched, so the user's modules
(their own ``models/``, ``tracer.py``) resolve exactly as they would without the tracer.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _import_trainio(package: str) -> None:
    """Load ``trainio`` from ``package`` (the capture's own copy, whatever this interpreter has)."""
    spec = importlib.util.spec_from_file_location(
        "trainio", os.path.join(package, "__init__.py"), submodule_search_locations=[package]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no trainio package in {package}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["trainio"] = module
    spec.loader.exec_module(module)


def _start_trainio() -> None:
    package = os.environ.get("TRAINIO_PACKAGE")
    if not package or not os.environ.get("TRAINIO_TRACE_DIR"):
        return
    try:
        _import_trainio(package)
        from trainio.tracer import runtime

        runtime.start_from_env()
    except Exception as exc:  # noqa: BLE001 - fail open: the training must start regardless
        for name in [n for n in sys.modules if n == "trainio" or n.startswith("trainio.")]:
            del sys.modules[name]  # a half-imported trainio must not stand in for a user's import of it
        message = f"trainio: tracing disabled in process {os.getpid()}: {exc} (training continues)\n"
        try:  # as trainio.tracer.messages.tell, which did not load: unbuffered, never raising
            os.write(2, message.encode("utf-8", "replace"))
        except OSError:
            pass


def _chain_user_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    search = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", search)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_start_trainio()
_chain_user_sitecustomize()
