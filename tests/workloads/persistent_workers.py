"""A short DataLoader run with persistent workers that ends the way real jobs do.

    python persistent_workers.py DATA --end join|sigterm|sigkill|oom [--drop-worker-spool]

``join``: the workers are shut down normally. ``sigterm`` / ``sigkill``: the workers are killed at
the end (DLIO never shuts its persistent workers down; they are terminated at exit). ``oom``: the
main process SIGKILLs itself mid-epoch, as the OOM killer would. ``--drop-worker-spool`` deletes
worker 0's spool files before the capture finalizes (a process whose records are lost). Every
sample a worker reads is appended to DATA/marks (durable, whatever kills whom); the last stdout line
is JSON with what the run should have read.
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset


class Files(Dataset):
    def __init__(self, paths: list[Path], marks: Path) -> None:
        self.paths = paths
        self.marks = str(marks)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with open(self.paths[i], "rb") as f:
            data = f.read()
        fd = os.open(self.marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{i}\n".encode())
        os.close(fd)
        return torch.tensor(len(data))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--end", choices=["join", "sigterm", "sigkill", "oom"], default="join")
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--drop-worker-spool", action="store_true")
    args = parser.parse_args()
    files = args.data / "files"
    if not files.is_dir():
        files.mkdir(parents=True)
        for i in range(args.files):
            (files / f"{i:05d}.bin").write_bytes(os.urandom(args.size))
    marks = args.data / "marks"
    marks.unlink(missing_ok=True)
    loader = DataLoader(
        Files(sorted(files.glob("*.bin")), marks), batch_size=4, shuffle=True, num_workers=2, persistent_workers=True
    )
    start = time.perf_counter()
    batches = 0
    for _ in range(args.epochs):
        for _batch in loader:
            batches += 1
            if args.end == "oom" and batches == 5:
                os.kill(os.getpid(), signal.SIGKILL)
    loop_s = time.perf_counter() - start
    workers = list(loader._iterator._workers)
    if args.end in ("sigterm", "sigkill"):
        # torch's SIGCHLD handler raises in the main process, at whatever line it is on, when a worker
        # dies of a signal before join() reaps it (about 1 run in 15, with or without the tracer)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for w in workers:
            os.kill(w.pid, signal.SIGTERM if args.end == "sigterm" else signal.SIGKILL)
            w.join()
    if args.drop_worker_spool:
        for path in (Path(os.environ["TRAINIO_TRACE_DIR"]) / "spool").glob(f"*-{workers[0].pid}-*.spool"):
            path.unlink()
    print(
        json.dumps(
            {
                "bytes": args.files * args.size * args.epochs,
                "samples": args.files * args.epochs,
                "batches": batches,
                "loop_s": loop_s,
                "workers": [w.pid for w in workers],
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
