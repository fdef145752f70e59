"""Image classification from one JPEG per sample (stand-in for ResNet-50 on ImageNet).

I/O pattern: the class directories are listed once at start (like torchvision's
ImageFolder); then every __getitem__ opens, reads and decodes one whole small
file, so each step reads batch-size files.
"""

import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

CLASSES = 10
CROP = 88  # random crop inside 96-128 px images, as RandomResizedCrop would


def generate(root, samples, rng):
    for c in range(CLASSES):
        os.makedirs(os.path.join(root, "train", f"class_{c:03d}"))
    for i in range(samples):
        w, h = rng.integers(96, 129, 2)
        with open(
            os.path.join(root, "train", f"class_{i % CLASSES:03d}", f"img_{i:06d}.jpg"),
            "wb",
        ) as f:
            f.write(common.random_jpeg(rng, int(w), int(h)))


class ImageFolder(Dataset):
    """root/<class>/<file>.jpg, classes numbered in sorted order."""

    def __init__(self, root):
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.items = [
            (os.path.join(root, c, f), label)
            for label, c in enumerate(classes)
            for f in sorted(os.listdir(os.path.join(root, c)))
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        with open(path, "rb") as f, Image.open(f) as img:
            pixels = np.asarray(img.convert("RGB"))
        # Random crop + horizontal flip; torch's RNG is seeded per DataLoader worker, numpy's is not.
        top = int(torch.randint(pixels.shape[0] - CROP + 1, ()))
        left = int(torch.randint(pixels.shape[1] - CROP + 1, ()))
        pixels = pixels[top : top + CROP, left : left + CROP]
        if torch.rand(()) < 0.5:
            pixels = pixels[:, ::-1]
        return common.normalize(pixels), label


def classification_loss(model, batch):
    images, labels = batch
    return torch.nn.functional.cross_entropy(model(images), labels)


def main(args):
    common.prepare_data(args, generate)
    t_start = time.time()
    loader = common.make_loader(args, ImageFolder(os.path.join(args.data, "train")))
    common.train(args, loader, common.tiny_cnn(CLASSES), classification_loss, t_start)


if __name__ == "__main__":
    args = common.parse_args("imagenet_jpeg", __doc__, samples=1024, batch_size=32)
    main(common.setup(args))
