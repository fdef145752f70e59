"""Start recording in a traced process and put every hook in place; ``uninstall_all`` takes them out.

Started from the injected ``sitecustomize``. The hooks are handed the recorder: none of them reads
a global. Process exits of every kind (normal exit, ``os._exit``, exec, SIGTERM) reach the
recorder's one exit routine; a SIGKILL needs none, since every record is already in the spool.
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import resource
import signal
import threading
from collections.abc import Callable
from typing import Any

from trainio.tracer import boto_hooks, importhook, s3connector_hooks, torch_hooks
from trainio.tracer.messages import tell
from trainio.tracer.patches import Patches
from trainio.tracer.recorder import ENV_TRACE_DIR, Recorder
from trainio.tracer.spool import SpoolFullError

HOOKS: dict[str, Callable[[Any, Recorder, Patches], None]] = {
    "torch.utils.data.dataloader": torch_hooks.patch_dataloader,
    "torch.utils.data._utils.fetch": torch_hooks.patch_fetch,
    "torch.utils.data._utils.worker": torch_hooks.patch_worker,
    "torch.utils.data._utils.pin_memory": torch_hooks.patch_pin_memory,
    "botocore.client": boto_hooks.patch_client,
    "aiobotocore.client": boto_hooks.patch_aio_client,
    "s3torchconnector._s3client._s3client": s3connector_hooks.patch_s3client,
}
UNHOOKED_CLIENTS = {
    "minio": "minio",
    "google.cloud.storage": "google-cloud-storage",
    "gcsfs": "gcsfs",
    "azure.storage.blob": "azure-storage-blob",
    "adlfs": "adlfs",
    "obstore": "obstore",
}
"""Object-store clients whose reads trainio does not record (module imported -> the client's name):
a process that imports one is named in the trace, and its network bytes count in the coverage."""
"""Module imported -> the patch applied to it."""


class _Installed:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.patches = Patches()
        self.sigterm: Callable | None = None


_installed: _Installed | None = None


def install_all(recorder: Recorder) -> None:
    """Hook this process for ``recorder``: exits, exec, fork, reaping children, SIGTERM, torch and botocore."""
    global _installed
    if _installed is not None:
        raise RuntimeError("trainio hooks are already installed in this process")
    state = _installed = _Installed(recorder)
    patches = state.patches
    real_exit, real_execv, real_execve = os._exit, os.execv, os.execve

    def _exit(code: int) -> None:
        recorder.close("os._exit")
        real_exit(code)

    def execv(path, args) -> None:
        recorder.close("exec")
        real_execv(path, args)

    def execve(path, args, env) -> None:
        recorder.close("exec")
        real_execve(path, args, env)

    def waitpid(pid: int, options: int):
        if pid <= 0:
            return real_waitpid(pid, options)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = real_waitpid(pid, options)
        if result[0] == pid:
            recorder.reaped(pid, before)
        return result

    real_waitpid = os.waitpid
    patches.replace(os, "waitpid", waitpid)
    patches.replace(os, "_exit", _exit)
    patches.replace(os, "execv", execv)
    patches.replace(os, "execve", execve)
    atexit.register(recorder.close, "exit")

    # Fork handlers cannot be unregistered: after uninstall_all they do nothing.
    def after_fork_in_child() -> None:
        if recorder.active:
            recorder.after_fork_child()

    os.register_at_fork(after_in_child=after_fork_in_child)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def on_sigterm(signum: int, frame) -> None:
            recorder.close("SIGTERM")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        state.sigterm = on_sigterm
        signal.signal(signal.SIGTERM, on_sigterm)
    for module, patch in HOOKS.items():
        importhook.when_imported(module, functools.partial(_apply, patch, recorder, patches))
    for module, client in UNHOOKED_CLIENTS.items():
        importhook.when_imported(module, functools.partial(_unhooked, client, recorder))


def _apply(patch: Callable[[Any, Recorder, Patches], None], recorder: Recorder, patches: Patches, module) -> None:
    patch(module, recorder, patches)


def _unhooked(client: str, recorder: Recorder, module) -> None:
    recorder.note_client(client, hooked=False)


def uninstall_all() -> None:
    """Undo ``install_all`` and close the recorder (tests; a traced process keeps its hooks)."""
    global _installed
    state, _installed = _installed, None
    if state is None:
        return
    state.recorder.close("uninstall")
    state.recorder.active = False
    importhook.remove()
    state.patches.restore()
    if state.sigterm is not None and signal.getsignal(signal.SIGTERM) is state.sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    atexit.unregister(state.recorder.close)


def start_from_env() -> None:
    """Entry point of the injected sitecustomize: trace if the capture set TRAINIO_TRACE_DIR."""
    trace_dir = os.environ.get(ENV_TRACE_DIR)
    if not trace_dir:
        return
    try:
        install_all(Recorder(trace_dir))
        # The interpreter's start-up and the recorder's modules live as long as the process: out of
        # the collector's reach they add nothing to the heap that the program's collections walk. A
        # DataLoader worker forked later otherwise crosses the threshold of a full collection, which
        # walks (and copies, page by page) every object it inherited: measured +0.14 s and +10,900
        # page faults per worker on the overhead benchmark (docs/capture.md).
        gc.freeze()
    except SpoolFullError:
        pass  # the empty spool file says so; the capture reports a full disk once, for all processes
    except Exception as exc:  # noqa: BLE001 - fail open: the training must start regardless
        tell(f"trainio: tracing disabled in process {os.getpid()}: {exc} (training continues)")
