"""Object detection with a bulk preload (stand-in for MLPerf SSD on COCO).

I/O pattern: before the first step every rank reads and decodes all images
(and box files) of its shard with a thread pool; training then runs from
memory, so storage is busy at start-up and idle afterwards.
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

SIZE = 96  # images are resized to a fixed network input, as SSD does (300 px there)
MAX_BOXES = 8
CLASSES = 5


def generate(root, samples, rng):
    for i in range(samples):
        w, h = rng.integers(64, 161, 2)
        with open(os.path.join(root, f"{i:06d}.jpg"), "wb") as f:
            f.write(common.random_jpeg(rng, int(w), int(h)))
        # 1-8 boxes as rows of x0, y0, x1, y1 (relative, sorted so x0 < x1), label
        n = rng.integers(1, MAX_BOXES + 1)
        corners = np.sort(rng.random((n, 2, 2)), axis=1).reshape(n, 4)
        labels = rng.integers(0, CLASSES, n)
        boxes = np.column_stack([corners, labels]).astype(np.float32)
        np.save(os.path.join(root, f"{i:06d}.npy"), boxes)


def load(root, i):
    """Read and decode one sample; boxes padded to MAX_BOXES with label -1."""
    with Image.open(os.path.join(root, f"{i:06d}.jpg")) as img:
        pixels = np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
    raw = np.load(os.path.join(root, f"{i:06d}.npy"))
    boxes = np.zeros((MAX_BOXES, 4), np.float32)
    labels = np.full(MAX_BOXES, -1, np.int64)
    boxes[: len(raw)], labels[: len(raw)] = raw[:, :4], raw[:, 4]
    return pixels, boxes, labels


class InMemory(Dataset):
    """The preloaded shard; __getitem__ only augments, it never touches storage."""

    def __init__(self, samples):
        self.pixels = torch.from_numpy(np.stack([s[0] for s in samples]))
        self.boxes = torch.from_numpy(np.stack([s[1] for s in samples]))
        self.labels = torch.from_numpy(np.stack([s[2] for s in samples]))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        pixels, boxes = self.pixels[i].numpy(), self.boxes[i].clone()
        if torch.rand(()) < 0.5:  # horizontal flip, boxes included
            pixels = pixels[:, ::-1]
            boxes[:, [0, 2]] = 1 - boxes[:, [2, 0]]
        return common.normalize(pixels), boxes, self.labels[i]


def detection_loss(model, batch):
    images, boxes, labels = batch
    out = model(images).view(len(images), MAX_BOXES, 4 + CLASSES)
    present = labels >= 0
    box_loss = torch.nn.functional.smooth_l1_loss(out[..., :4][present], boxes[present])
    cls_loss = torch.nn.functional.cross_entropy(out[..., 4:].reshape(-1, CLASSES), labels.view(-1), ignore_index=-1)
    return box_loss + cls_loss


def main(args):
    common.prepare_data(args, generate)
    t_start = time.time()
    # This rank's shard; an unshuffled DistributedSampler pads the shards to equal
    # size, so every rank runs as many steps (DDP needs that).
    shard = range(args.samples)
    if args.world > 1:
        shard = list(DistributedSampler(shard, shuffle=False))
    with ThreadPoolExecutor(max_workers=8) as pool:
        dataset = InMemory(list(pool.map(lambda i: load(args.data, i), shard)))
    if args.rank == 0:
        seconds = time.time() - t_start
        print(f"preloaded {len(dataset)} samples per rank in {seconds:.1f}s", flush=True)
    # The shard is this rank's own already: shuffle it locally, do not shard again.
    loader = common.make_loader(args, dataset, distributed=False)
    model = common.tiny_cnn(MAX_BOXES * (4 + CLASSES))
    common.train(args, loader, model, detection_loss, t_start)


if __name__ == "__main__":
    args = common.parse_args("detection_preload", __doc__, samples=512, batch_size=32)
    main(common.setup(args))
