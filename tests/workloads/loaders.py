"""Real loaders of every kind, for the capture tests: each reads a small synthetic data set through a
DataLoader (or a client) and prints one JSON line with what it read, the ground truth.

    python tests/workloads/loaders.py memmap DIR      # rows of an np.memmap file, cold in the page cache
    python tests/workloads/loaders.py memmap DIR ROWS EPOCHS STEP_MS   # ... longer, with a training step
    python tests/workloads/loaders.py arrow DIR       # a Hugging Face `datasets` Arrow file (memory-mapped)
    python tests/workloads/loaders.py wds DIR         # WebDataset tar shards, batched inside the pipeline
    python tests/workloads/loaders.py wds DIR SHARDS RECORDS EPOCHS STEP_MS   # ... larger, with a step
    python tests/workloads/loaders.py s3fs BUCKET     # objects through fsspec's s3fs (aiobotocore)
    python tests/workloads/loaders.py s3conn BUCKET   # objects through the Amazon S3 Connector for PyTorch
    python tests/workloads/loaders.py minio BUCKET    # objects through MinIO's client (not hooked by trainio)

The object kinds need TRAINIO_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and put their
objects first (with boto3).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROW = 32 << 10
ROWS = 1024
OBJECTS = 24
OBJECT_BYTES = 40_000


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache, so that reading it reads storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class Rows(Dataset):
    def __init__(self, path: Path, rows: int = ROWS) -> None:
        self.mapped = np.memmap(path, dtype=np.uint8, mode="r")
        self.rows = self.mapped.reshape(rows, ROW)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(int(self.rows[i].sum()))


def memmap(folder: Path, rows: int = ROWS, epochs: int = 1, step_ms: float = 0.0) -> dict:
    """``rows`` rows of 32 KiB, shuffled, 2 workers, batches of 32; each step sleeps ``step_ms`` (the
    accelerator's share of a training step). Prints the training loop's seconds as ``loop_s``."""
    import time

    rows, epochs = int(rows), int(epochs)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokens.bin"
    np.random.default_rng(0).integers(0, 255, rows * ROW, dtype=np.uint8).tofile(path)
    evict(path)
    dataset = Rows(path, rows)
    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=2)
    samples, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            samples += len(batch)
            time.sleep(step_ms / 1e3)
    loop_s = time.perf_counter() - start
    del loader
    dataset.mapped._mmap.close()  # unmapped: the trace says so
    return {"samples": samples, "file": str(path.resolve()), "file_bytes": rows * ROW, "loop_s": loop_s}


def arrow(folder: Path) -> dict:
    import datasets

    rng = np.random.default_rng(1)
    data = datasets.Dataset.from_dict({"x": [rng.bytes(ROW) for _ in range(ROWS // 2)], "y": list(range(ROWS // 2))})
    data.save_to_disk(str(folder / "ds"))
    files = sorted((folder / "ds").glob("*.arrow"))
    for path in files:
        evict(path)
    loaded = datasets.load_from_disk(str(folder / "ds")).with_format("numpy")
    loader = DataLoader(loaded, batch_size=16, shuffle=True, num_workers=2, collate_fn=lambda rows: len(rows))
    samples = sum(loader)
    size = sum(p.stat().st_size for p in files)
    return {"samples": samples, "files": [str(p.resolve()) for p in files], "file_bytes": size}


def wds(folder: Path, shards: int = 4, records: int = 50, epochs: int = 2, step_ms: float = 0.0) -> dict:
    """``shards`` tar shards of ``records`` records each (~3 KB and a label), `.batched(10)` inside the
    pipeline, WebLoader(batch_size=None), 2 workers; each step sleeps ``step_ms``."""
    import io
    import tarfile
    import time

    import webdataset

    shards, records, epochs = int(shards), int(records), int(epochs)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    paths = []
    for s in range(shards):
        shard = folder / f"shard-{s:03d}.tar"
        with tarfile.open(shard, "w") as tar:
            for i in range(records):
                for ext, payload in (("bin", rng.bytes(3000 + 17 * (i % 50))), ("cls", str(i % 7).encode())):
                    info = tarfile.TarInfo(f"s{s}-{i:04d}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        paths.append(shard)
    urls = str(folder / f"shard-{{000..{shards - 1:03d}}}.tar")
    pipeline = webdataset.WebDataset(urls, shardshuffle=False).to_tuple("bin", "cls").batched(10)
    loader = webdataset.WebLoader(pipeline, batch_size=None, num_workers=2)
    items = samples = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for payloads, _labels in loader:
            items += 1
            samples += len(payloads)
            time.sleep(step_ms / 1e3)
    return {
        "items": items,
        "samples": samples,
        "shard_bytes": sum(p.stat().st_size for p in paths),
        "epochs": epochs,
        "loop_s": time.perf_counter() - start,
    }


def _put_objects(bucket: str) -> list[str]:
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["TRAINIO_S3_ENDPOINT"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket=bucket)
    keys = [f"train/{i:03d}.bin" for i in range(OBJECTS)]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=np.random.default_rng(i).bytes(OBJECT_BYTES + i))
    return keys


class Objects(Dataset):
    """Reads one object per sample through ``read(key)``, a client made in each process."""

    def __init__(self, keys: list[str], make) -> None:
        self.keys, self.make, self.client, self.pid = keys, make, None, None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> int:
        if self.pid != os.getpid():  # a client per process: none of them survives a fork
            self.client, self.pid = self.make(), os.getpid()
        return len(self.client(self.keys[i]))


def objects(kind: str, bucket: str) -> dict:
    keys = _put_objects(bucket)
    endpoint = os.environ["TRAINIO_S3_ENDPOINT"]
    if kind == "s3fs":

        def make():
            import s3fs

            fs = s3fs.S3FileSystem(
                endpoint_url=endpoint, client_kwargs={"region_name": "us-east-1"}, skip_instance_cache=True
            )
            return lambda key: fs.cat_file(f"{bucket}/{key}")

    elif kind == "s3conn":

        def make():
            from s3torchconnector import S3ClientConfig
            from s3torchconnector._s3client import S3Client

            client = S3Client("us-east-1", endpoint=endpoint, s3client_config=S3ClientConfig(force_path_style=True))
            return lambda key: client.get_object(bucket, key).read()

    else:

        def make():
            from minio import Minio

            host = endpoint.split("://", 1)[1]
            mc = Minio(host, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], secure=False)

            def read(key: str) -> bytes:
                response = mc.get_object(bucket, key)
                try:
                    return response.read()
                finally:
                    response.close()
                    response.release_conn()

            return read

    loader = DataLoader(Objects(keys, make), batch_size=4, num_workers=2, collate_fn=sum)
    total = sum(loader)
    return {"samples": len(keys), "bytes": total, "bucket": bucket, "keys": keys}


def main() -> None:
    kind, where = sys.argv[1], sys.argv[2]
    if kind in ("s3fs", "s3conn", "minio"):
        report = objects(kind, where)
    else:
        numbers = [float(x) for x in sys.argv[3:]]
        report = {"memmap": memmap, "arrow": arrow, "wds": wds}[kind](Path(where), *numbers)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
