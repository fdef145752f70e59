"""Loader-bound small-file workload for the overhead benchmark: the training step does nothing.

    python bench/workloads/small_files.py DATA_DIR [--files 3000] [--epochs 3] [--workers 2]

Prints one JSON line with the training loop's own wall time (``loop_s``) and the CPU time the loop
cost this process and its DataLoader workers (``cpu_s``), which other load on the machine disturbs
far less than wall time.
"""

import argparse
import gc
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class SmallFiles(Dataset):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with open(self.files[i], "rb") as f:
            data = np.frombuffer(f.read(), dtype=np.uint8)
        return torch.from_numpy(data[:64].astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--freeze-gc",
        action="store_true",
        help="move the objects of start-up out of the garbage collector's reach: a collection then scans only"
        " the loop's own objects, so that instruction counts repeat run to run",
    )
    args = parser.parse_args()
    if not (args.data / "DONE").exists():
        args.data.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(args.files):
            (args.data / f"{i:06d}.bin").write_bytes(rng.bytes(args.size))
        (args.data / "DONE").write_text("ok")
    files = sorted(args.data.glob("*.bin"))
    loader = DataLoader(
        SmallFiles(files), batch_size=32, shuffle=True, num_workers=args.workers, persistent_workers=args.workers > 0
    )
    if args.freeze_gc:
        gc.freeze()
    start, cpu0, children0 = time.perf_counter(), time.process_time(), _children_cpu()
    batches = 0
    for _ in range(args.epochs):
        for _batch in loader:
            batches += 1
    loop_s = time.perf_counter() - start
    del loader, _batch  # joins the persistent workers, so that their CPU time is counted
    gc.collect()
    cpu_s = time.process_time() - cpu0 + _children_cpu() - children0
    print(json.dumps({"loop_s": loop_s, "cpu_s": cpu_s, "batches": batches}))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
