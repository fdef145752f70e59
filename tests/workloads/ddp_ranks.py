"""torchrun workload: each rank reads its DistributedSampler share of small files through a DataLoader."""

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class Files(Dataset):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(len(self.files[i].read_bytes()))


def main() -> None:
    data = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if rank == 0 and not (data / "DONE").exists():
        data.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(1)
        for i in range(32):
            (data / f"s{i}.bin").write_bytes(rng.bytes(20_000))
        (data / "DONE").write_text("ok")
    dist.barrier()
    files = sorted(data.glob("s*.bin"))
    sampler = DistributedSampler(Files(files), shuffle=True)
    loader = DataLoader(Files(files), batch_size=4, sampler=sampler, num_workers=1)
    seen = 0
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for batch in loader:
            seen += int(batch.numel())
    dist.barrier()
    print(f"rank {rank} of {os.environ['WORLD_SIZE']} saw {seen} samples")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
