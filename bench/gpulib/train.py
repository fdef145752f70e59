"""The GPU accuracy benchmark's training: a real image classifier fed by a real JPEG DataLoader.

    python bench/gpulib/train.py --data DIR --workers 8 [--model resnet50|tiny] [--device cuda|cpu]
    python bench/gpulib/train.py --data DIR --generate 5000      # the synthetic JPEGs, then exit

ResNet-50 from torchvision (random initialisation: no weights are downloaded), bf16 autocast,
channels_last, SGD, batch 128; the DataLoader decodes each JPEG with PIL and applies
RandomResizedCrop(224) (torchvision's sampling of scale 0.08-1 and aspect ratio 3/4-4/3), a random
horizontal flip and normalisation, with pin_memory on a GPU. ``--model tiny`` swaps in a small CNN
(no torchvision), so that the same script runs as a CPU stand-in. ``--preload`` reads every file into
memory first (threads) and decodes from there; under torchrun each rank reads its DistributedSampler
share and DDP averages the gradients.

Time to train counts from the start of data loading (the preload, or the first batch request) to the
end of the last step after a device synchronisation; the run ends with one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import common  # the examples' DataLoader, as every example makes it

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
CLASSES = 1000


def generate(root: Path, first: int, stop: int) -> None:
    """Photo-like JPEGs ``first`` .. ``stop`` - 1 of 320-500 x 240-400 px (about 47 KB at quality 90),
    each seeded by its number, so that several processes can share the work."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(first, stop):
        rng = np.random.default_rng([0, i])
        width, height = int(rng.integers(320, 501)), int(rng.integers(240, 401))
        coarse = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize(
            (width, height), Image.BILINEAR
        )
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-10, 11, (height, width, 3), dtype=np.int16)
        buf = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        (root / f"{i:06d}.jpg").write_bytes(buf.getvalue())


def random_resized_crop(img: Image.Image, size: int) -> Image.Image:
    """torchvision's RandomResizedCrop, drawn from torch's generator as it draws (which a DataLoader
    seeds per worker): an area of 8-100% and an aspect ratio of 3/4-4/3 (log-uniform), ten tries,
    else a centre crop; resized bilinearly to ``size`` x ``size``."""
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * torch.empty(1).uniform_(0.08, 1.0).item()
        ratio = math.exp(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3)).item())
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))


def to_tensor(raw: bytes) -> torch.Tensor:
    """Decode, random resized crop, random horizontal flip, normalise: a CHW float tensor."""
    with Image.open(io.BytesIO(raw)) as img:
        crop = random_resized_crop(img.convert("RGB"), 224)
    pixels = np.asarray(crop, dtype=np.float32)
    if torch.rand(()) < 0.5:
        pixels = pixels[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(((pixels - MEAN) / STD).transpose(2, 0, 1)))


class Images(Dataset):
    """One JPEG per sample, read when asked for (or from ``preloaded`` bytes)."""

    def __init__(self, files: list[Path], preloaded: list[bytes] | None = None) -> None:
        self.files, self.preloaded = files, preloaded

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        raw = self.preloaded[i] if self.preloaded is not None else self.files[i].read_bytes()
        return to_tensor(raw), i % CLASSES


def tiny_model() -> torch.nn.Module:
    """A small CNN standing in for ResNet-50 on a CPU."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 5, stride=4, padding=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, CLASSES),
    )


def make_model(name: str) -> torch.nn.Module:
    if name == "tiny":
        return tiny_model()
    import torchvision  # only on a machine that has it: the GPU run

    return torchvision.models.resnet50(weights=None)


def main(args: argparse.Namespace) -> None:
    root = Path(args.data)
    if args.generate:
        generate(root, 0, args.generate)
        print(f"generated {args.generate} JPEGs in {root}", flush=True)
        return
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = args.device == "cuda"
    device = torch.device("cuda", 0 if args.shared_gpu else local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        torch.distributed.init_process_group("nccl" if cuda and not args.shared_gpu else "gloo")
    torch.manual_seed(0)
    model = make_model(args.model).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    files = sorted(root.glob("*.jpg"))[: args.images or None]
    if world > 1:
        torch.distributed.barrier()
    start = time.monotonic()
    preloaded = None
    if args.preload:
        mine = files[rank::world]
        with ThreadPoolExecutor(max_workers=args.preload_threads) as pool:
            preloaded = list(pool.map(Path.read_bytes, mine))
        files = mine
    options = argparse.Namespace(
        world=world, rank=rank, device=device, seed=0, batch_size=args.batch_size, workers=args.workers
    )
    options.start_method = options.prefetch_factor = None
    loader = common.make_loader(options, Images(files, preloaded), distributed=world > 1 and not args.preload)
    steps = samples = 0
    for epoch in range(args.epochs):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            if cuda:
                images = images.to(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = loss_fn(model(images), labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            steps += 1
            samples += len(labels)
    if cuda:
        torch.cuda.synchronize()
    end = time.monotonic()
    if world > 1:
        torch.distributed.destroy_process_group()
    report = {
        "gpu_accuracy_train": 1,
        "rank": rank,
        "world": world,
        "model": args.model,
        "device": args.device,
        "workers": args.workers,
        "preload": args.preload,
        "steps": steps,
        "samples": samples,
        "start_monotonic": start,
        "end_monotonic": end,
        "time_to_train_s": round(end - start, 4),
    }
    # One write of the whole line (well under PIPE_BUF, so atomic): under torchrun stdout may be unbuffered,
    # where print() writes the text and its newline apart and two ranks' lines interleave.
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of NNNNNN.jpg")
    p.add_argument("--generate", type=int, default=0, help="write this many JPEGs into --data and exit")
    p.add_argument("--images", type=int, default=0, help="use the first N images only [all]")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--model", choices=["resnet50", "tiny"], default="resnet50")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--preload", action="store_true", help="read every file into memory first")
    p.add_argument("--preload-threads", type=int, default=16)
    p.add_argument(
        "--shared-gpu",
        action="store_true",
        help="under torchrun with one GPU: both ranks share it, gradients averaged through gloo",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
