"""Shared pieces of the example training scripts.

Argument parsing, torch.distributed setup, synthetic-data bookkeeping, the
DataLoader and the training loop live here so each example only has to say
what its data looks like, how it is read, and which model consumes it.
"""

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

MARKER = "GENERATING"  # written first: the directory is ours and may be wiped
DONE = "DONE"  # written last: the data set is complete


def parse_args(name, description, samples, batch_size, epochs=2, extra=None):
    """The options every example shares; extra(parser), when given, adds a script's own."""
    p = argparse.ArgumentParser(
        prog=name,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        default=os.path.join(tempfile.gettempdir(), "trainio-examples", name),
        help="data set directory, generated on first use (default: %(default)s)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=samples,
        help="data set size (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size, help="per-rank batch size")
    p.add_argument("--workers", type=int, default=2, help="DataLoader num_workers")
    p.add_argument(
        "--start-method",
        choices=["fork", "spawn", "forkserver"],
        help="DataLoader multiprocessing_context (default: the platform's)",
    )
    p.add_argument("--prefetch-factor", type=int, help="batches prefetched per worker")
    p.add_argument(
        "--step-time",
        type=float,
        help="emulate the accelerator: sleep this many seconds per batch instead of computing",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cuda" if torch.cuda.is_available() else "cpu",
    )
    p.add_argument("--seed", type=int, default=0)
    if extra is not None:
        extra(p)
    return p.parse_args()


def setup(args):
    """Initialise torch.distributed under torchrun; set args.rank/world/device."""
    args.world = int(os.environ.get("WORLD_SIZE", "1"))
    args.rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
        args.device = torch.device("cuda", local_rank)
    else:
        args.device = torch.device("cpu")
    if args.world > 1:
        dist.init_process_group("nccl" if args.device.type == "cuda" else "gloo")
    torch.manual_seed(args.seed)  # same initial weights on every rank
    return args


def prepare_data(args, generate, **extra):
    """Have rank 0 run generate(data_dir, samples, rng) unless a matching data set exists (``extra``:
    more parameters the data set depends on)."""
    root, params = (
        Path(args.data),
        json.dumps({"samples": args.samples, "seed": args.seed, **extra}),
    )
    done = root / DONE
    if args.rank == 0 and not (done.exists() and done.read_text() == params):
        if root.is_dir() and any(root.iterdir()):
            if not ((root / MARKER).exists() or done.exists()):
                raise SystemExit(f"{root} holds files we did not generate; pick another --data")
            shutil.rmtree(root)  # ours, but partial or made with other parameters
        root.mkdir(parents=True)
        (root / MARKER).touch()
        t0 = time.time()
        generate(str(root), args.samples, np.random.default_rng(args.seed))
        (root / MARKER).unlink()
        done.write_text(params)
        print(f"generated {root} in {time.time() - t0:.1f}s", flush=True)
    if args.world > 1:
        dist.barrier()  # the other ranks wait for rank 0's data


def random_jpeg(rng, width, height, quality=90):
    """Encode a random but photo-like (smooth plus noise) RGB image as JPEG bytes."""
    coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((width, height), Image.BILINEAR)
    pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-24, 25, (height, width, 3), dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def normalize(pixels):
    """uint8 HWC array -> normalised float32 CHW tensor (what torchvision's ToTensor+Normalize produce)."""
    return torch.from_numpy(np.ascontiguousarray(((pixels - MEAN) / STD).transpose(2, 0, 1)))


def make_loader(args, dataset, collate_fn=None, distributed=None, persistent_workers=False):
    """Shuffled DataLoader; a DistributedSampler splits it across ranks (args.world, args.rank:
    torchrun's, or a script's own when it runs ranks as independent processes)."""
    distributed = args.world > 1 if distributed is None else distributed
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, num_replicas=args.world, rank=args.rank, shuffle=True, seed=args.seed)
    kwargs = {}
    if args.workers > 0:
        kwargs["multiprocessing_context"] = args.start_method
        kwargs["prefetch_factor"] = args.prefetch_factor
        kwargs["persistent_workers"] = persistent_workers
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        collate_fn=collate_fn,
        pin_memory=args.device.type == "cuda",
        **kwargs,
    )


def tiny_cnn(num_outputs, width=32):
    """A small image backbone + linear head: enough real compute to overlap with I/O."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(width),
        torch.nn.ReLU(),
        torch.nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(2 * width),
        torch.nn.ReLU(),
        torch.nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * width, num_outputs),
    )


def to_device(batch, device):
    return [t.to(device, non_blocking=True) for t in batch]


def train(args, loader, model, loss_fn, t_start, lr=0.05):
    """Run args.epochs over loader; loss_fn(model, batch) returns a scalar loss.

    With --step-time the model is never touched: each batch costs a fixed sleep,
    the way DLIO / MLPerf Storage emulate an accelerator.
    """
    if args.step_time is None:
        model = model.to(args.device)
        if args.world > 1:
            model = DistributedDataParallel(model, device_ids=[args.device] if args.device.type == "cuda" else None)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    steps = samples = 0
    for epoch in range(args.epochs):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)  # a different shuffle every epoch
        for batch in loader:
            if args.step_time is not None:
                time.sleep(args.step_time)
            else:
                loss = loss_fn(model, to_device(batch, args.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            steps += 1
            samples += len(batch[0])
    if args.device.type == "cuda":
        torch.cuda.synchronize()
    if args.world > 1:
        total = torch.tensor([samples], device=args.device)
        dist.all_reduce(total)
        samples = int(total.item())
        dist.destroy_process_group()
    if args.rank == 0:
        print(
            f"done: epochs={args.epochs} steps={steps} samples={samples} seconds={time.time() - t_start:.2f}",
            flush=True,
        )
