"""A DataLoader run whose samples are read through five different paths into the kernel.

PIL (PNG), numpy.load (.npy), open().read() (raw bytes), numpy.fromfile (stdio fread) and h5py
(HDF5's own pread calls). Writes ``expected.json`` with the bytes the files hold and the epochs, so
a test can compare what the trace saw with what is on disk.

    python mixed_readers.py DATA_DIR --workers 2 --start-method spawn --epochs 2
"""

import argparse
import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

READERS = ("png", "npy", "raw", "fromfile", "h5")


def make_data(root: Path, per_kind: int) -> list[Path]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(per_kind):
        pixels = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)  # noise: PNG cannot compress it
        files.append(root / f"img_{i}.png")
        Image.fromarray(pixels).save(files[-1])
        files.append(root / f"arr_{i}.npy")
        np.save(files[-1], rng.standard_normal(16384).astype(np.float32))
        files.append(root / f"raw_{i}.bin")
        files[-1].write_bytes(rng.bytes(48 * 1024))
        files.append(root / f"ff_{i}.f32")
        rng.standard_normal(12288).astype(np.float32).tofile(files[-1])
        files.append(root / f"h5_{i}.h5")
        with h5py.File(files[-1], "w") as f:
            f.create_dataset("x", data=rng.standard_normal(32768).astype(np.float32))
    return files


class MixedDataset(Dataset):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i]
        if path.suffix == ".png":
            with Image.open(path) as img:
                data = np.asarray(img.convert("RGB"), dtype=np.float32)
        elif path.suffix == ".npy":
            data = np.load(path)
        elif path.suffix == ".bin":
            with open(path, "rb") as f:
                data = np.frombuffer(f.read(), dtype=np.uint8).astype(np.float32)
        elif path.suffix == ".f32":
            data = np.fromfile(path, dtype=np.float32)
        else:
            with h5py.File(path, "r") as f:
                data = f["x"][:]
        return torch.tensor(float(data.sum()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start-method", default="fork")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--step-time", type=float, default=0.0)
    args = parser.parse_args()
    if not (args.data / "DONE").exists():
        make_data(args.data, args.per_kind)
        (args.data / "DONE").write_text("ok")
    files = sorted(p for p in args.data.iterdir() if p.suffix in (".png", ".npy", ".bin", ".f32", ".h5"))
    dataset = MixedDataset(files)
    ctx = args.start_method if args.workers > 0 else None
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=args.workers, multiprocessing_context=ctx)
    total = 0.0
    for _ in range(args.epochs):
        for batch in loader:
            total += float(batch.sum())
            if args.step_time:
                torch.tensor(0).add_(1)
                import time

                time.sleep(args.step_time)
    expected = {"file_bytes": sum(os.path.getsize(p) for p in files), "files": len(files), "epochs": args.epochs}
    (args.data / "expected.json").write_text(json.dumps(expected))
    print(f"checksum {total:.3f}")


if __name__ == "__main__":
    main()
