"""A small training for the capture's fault suite: deterministic output, and a ground truth of what
it read that no kill can erase.

    python fault_train.py DATA [--loader torch|none] [--fault none|kill-main|kill-worker|interrupt]
                               [--ready FILE] [--exit N] [--silent]

Reads the 64 files of 64 KiB in DATA/files (made on first use) in 512-byte reads, two epochs, through
a DataLoader with two workers (``--loader none``: in the main process, without torch). Each sample
read is appended to DATA/marks. stdout gets one line per epoch with a checksum, stderr one line per
epoch (neither with ``--silent``); the exit code is ``--exit``. ``--ready FILE`` is created after the
third batch. Faults: ``kill-main`` SIGKILLs the main process after five batches (as the OOM killer would);
``kill-worker`` SIGKILLs DataLoader worker 0 after three batches and reports the loader's failure
(exit 4); ``interrupt`` waits after the third batch for a Ctrl-C, then saves a checkpoint in 0.5 s (exit 5).
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

FILES, SIZE, CHUNK, EPOCHS = 64, 65536, 512, 2


class Files:
    def __init__(self, paths: list[Path], marks: Path) -> None:
        self.paths, self.marks = paths, str(marks)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> int:
        total = 0
        with open(self.paths[i], "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                total += sum(chunk[::64])
        fd = os.open(self.marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{i}\n".encode())
        os.close(fd)
        return total


def data_set(folder: Path) -> list[Path]:
    """The files, made with known contents on first use."""
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for i in range(FILES):
            (folder / f"{i:05d}.bin").write_bytes(bytes((i * 7 + j) % 251 for j in range(SIZE)))
    return sorted(folder.glob("*.bin"))


def batches(dataset: Files, loader: str):
    """(batch of checksums, the loader's worker pids) in order."""
    if loader == "none":
        for start in range(0, len(dataset), 4):
            yield [dataset[i] for i in range(start, min(start + 4, len(dataset)))], []
        return
    from torch.utils.data import DataLoader

    # Batches as plain lists, not tensors: a tensor crosses to the main process as a file descriptor,
    # and a worker killed in the middle of that hand-over makes the main process print a traceback
    # from multiprocessing's resource sharer thread, or not, by chance.
    it = iter(DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=list))
    for batch in it:
        yield batch, [w.pid for w in it._workers]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--loader", choices=["torch", "none"], default="torch")
    parser.add_argument("--fault", choices=["none", "kill-main", "kill-worker", "interrupt"], default="none")
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()
    dataset = Files(data_set(args.data / "files"), args.data / "marks")
    (args.data / "marks").unlink(missing_ok=True)
    done = 0
    try:
        for epoch in range(1, EPOCHS + 1):
            checksum = 0
            for batch, workers in batches(dataset, args.loader):
                checksum += sum(batch)
                done += 1
                if done == 3 and args.ready:
                    args.ready.touch()
                if done == 3 and args.fault == "kill-worker":
                    os.kill(workers[0], signal.SIGKILL)
                if done == 3 and args.fault == "interrupt":
                    while True:
                        time.sleep(0.02)
                if done == 5 and args.fault == "kill-main":
                    os.kill(os.getpid(), signal.SIGKILL)
            if not args.silent:
                print(f"epoch {epoch}: checksum {checksum}", flush=True)
                print(f"epoch {epoch} done", file=sys.stderr, flush=True)
    except (RuntimeError, ConnectionError, EOFError):  # the DataLoader noticed its dead worker, one way or another
        print("loader failed: a worker died", flush=True)
        sys.exit(4)
    except KeyboardInterrupt:
        time.sleep(0.5)  # writing the checkpoint: a second SIGINT now would cost it
        print(f"interrupted after batch {done}: checkpoint saved", flush=True)
        sys.exit(5)
    sys.exit(args.exit)


if __name__ == "__main__":
    main()
