"""Injected by ``tracer capture`` (via PYTHONPATH) into every Python process of the traced run.

It starts the recorder, then runs the user's own ``sitecustomize`` if there is one, so that the
run behaves as it would untraced. trainio's own packages are put on ``sys.path`` only for the
import, at the end, so that a user's module of the same name always wins.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _start_trainio() -> None:
    home = os.environ.get("TRAINIO_HOME")
    if not home or not os.environ.get("TRAINIO_TRACE_DIR"):
        return
    sys.path.append(home)
    try:
        from tracer import runtime

        runtime.start_from_env()
    except Exception as exc:  # noqa: BLE001 - fail open: the training must start regardless
        print(f"trainio: tracing disabled in process {os.getpid()}: {exc} (training continues)", file=sys.stderr)
    finally:
        if home in sys.path:
            sys.path.remove(home)


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
