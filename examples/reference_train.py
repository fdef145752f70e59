"""Reference training workload: one JPEG per sample, from a local directory or from Ceph.

The workload bench/accuracy.py runs for real and projects with `replay what-if`. A real
DataLoader reads real JPEGs and decodes them (random resized crop to 112 px, flip, normalise);
the accelerator step is `time.sleep(--step-time)` per batch, as DLIO and MLPerf Storage emulate
it, so that a few CPU cores can stand in for several nodes. With --raw-share F, that share of the
samples (spread evenly) are raw bytes (NNNNNN.bin) handed on undecoded, as a tensor of their bytes.

Data sources (--source):

  local:DIR                                 one file per sample (DIR/NNNNNN.jpg, DIR/index.json)
  rgw:http://HOST:PORT/BUCKET[/PREFIX]      one S3 object per sample, one GET each (boto3)
  rados:POOL[/PREFIX]                       one RADOS object per sample (python3-rados, $CEPH_CONF)
  cephfs:/PATH                              one file per sample through libcephfs (no mount)
  rgw-shards:http://HOST:PORT/BUCKET[/PREFIX]
                                            tar shards of about --shard-bytes, each read with one
                                            whole GET; samples are shuffled through a buffer of
                                            --shuffle-buffer samples (WebDataset style)
  local-shards:DIR                          the same tar shards in a local directory, each read whole
  memmap:DIR                                every sample packed into one file (DIR/samples.bin), read
                                            through a memory mapping (np.memmap), its pages dropped from
                                            the page cache first; DIR may be a CephFS mount (ceph-fuse)

S3 credentials come from the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; RADOS and CephFS
use $CEPH_CONF. `--place` generates the data set in --data (seeded, reused when it matches) and
copies it to --source, then exits.

Ranks without torch.distributed: --rank R --world N makes this process read its own
DistributedSampler share (or shard share), so N concurrent processes stand for N nodes. With
--start-barrier DIR each process writes DIR/ready-R once set up and waits for DIR/go, so that
the benchmark starts all "nodes" together.

--preload reads the process's whole share into memory first (a thread pool of --preload-threads
for per-sample sources, whole shards for the shard sources), then trains from memory; decoding stays
in the DataLoader workers. The default streams: every sample is read when its batch is built.

The run ends with one JSON line: time_to_train_s counts from the start of data loading (the
preload, or the first batch request) to the end of the last step, as `replay what-if` does.
"""

import argparse
import io
import json
import multiprocessing
import os
import random
import resource
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

CLASSES = 10
CROP = 112  # network input, as RandomResizedCrop(112) would give
INDEX = "index.json"  # [[key, bytes], ...] of the per-sample sources
SHARD_INDEX = "shards.json"  # [[key, bytes, samples], ...] of rgw-shards and local-shards
SHARD_KINDS = ("rgw-shards", "local-shards")
PACKED, PACKED_INDEX = "samples.bin", "memmap.json"  # [[key, offset, bytes], ...] of memmap
INDEX_MAX_BYTES = 8 << 20  # what RADOS and CephFS reads of an index ask for (they need a length)
DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"  # python3-rados / python3-cephfs live here


# -- data set ----------------------------------------------------------------------------------


def is_raw(i, raw_share):
    """Whether sample ``i`` is raw bytes: ``raw_share`` of the samples, spread evenly."""
    return int((i + 1) * raw_share) > int(i * raw_share)


def generate(root, samples, rng, raw_share=0.0):
    """Photo-like JPEGs of 160-256 px (about 10-30 KB each), ``raw_share`` of them raw bytes of the
    same sizes instead, and their index."""
    index = []
    for i in range(samples):
        w, h = rng.integers(160, 257, 2)
        data = common.random_jpeg(rng, int(w), int(h))
        name = f"{i:06d}.jpg"
        if is_raw(i, raw_share):
            name, data = f"{i:06d}.bin", rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
        Path(root, name).write_bytes(data)
        index.append([name, len(data)])
    Path(root, INDEX).write_text(json.dumps(index))


def label_of(key):
    return int(os.path.basename(key)[:6]) % CLASSES


def transform(raw, label):
    """Decode, random resized crop (50-100% of the area), horizontal flip, normalise."""
    with Image.open(io.BytesIO(raw)) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = 0.5 + 0.5 * float(torch.rand(()))
        cw, ch = max(1, int(w * scale**0.5)), max(1, int(h * scale**0.5))
        left, top = int(torch.randint(w - cw + 1, ())), int(torch.randint(h - ch + 1, ()))
        pixels = np.asarray(img.resize((CROP, CROP), Image.BILINEAR, box=(left, top, left + cw, top + ch)))
    if torch.rand(()) < 0.5:
        pixels = pixels[:, ::-1]
    return common.normalize(pixels), label


def undecoded(raw, label):
    """A raw-bytes sample: its bytes as a tensor of the decoded samples' shape, no decoding."""
    values = np.resize(np.frombuffer(raw, dtype=np.uint8), 3 * CROP * CROP).reshape(3, CROP, CROP)
    return torch.from_numpy(values.astype(np.float32) / 255), label


def to_sample(key, raw):
    return (undecoded if key.endswith(".bin") else transform)(raw, label_of(key))


# -- storage -----------------------------------------------------------------------------------


class Store:
    """get/put of whole objects by key. Connections are made per process, on first use, so that
    DataLoader workers (forked) never share the parent's sockets or client threads."""

    def __init__(self):
        self._pid = None

    def _client(self):
        if self._pid != os.getpid():
            self._connect()
            self._pid = os.getpid()

    def get(self, key, size):
        self._client()
        return self._get(key, size)

    def put(self, key, data):
        self._client()
        self._put(key, data)

    def close(self):
        if self._pid == os.getpid():
            self._close()
        self._pid = None

    def _close(self):
        pass


class LocalStore(Store):
    def __init__(self, root):
        super().__init__()
        self.root = root

    def _connect(self):
        pass

    def _get(self, key, size):
        with open(os.path.join(self.root, key), "rb") as f:
            return f.read()

    def _put(self, key, data):
        path = Path(self.root, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


_BOTO_SESSION = None


def boto_session():
    """One boto3 session per process tree: its loaded service model is inherited by forked
    workers, so each worker's client costs milliseconds rather than a 0.1 s model load."""
    global _BOTO_SESSION
    if _BOTO_SESSION is None:
        import boto3

        _BOTO_SESSION = boto3.session.Session()
    return _BOTO_SESSION


class S3Store(Store):
    def __init__(self, url):
        super().__init__()
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        self.endpoint = f"{scheme}://{host}"
        self.bucket, _, prefix = path.partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if not (scheme in ("http", "https") and host and self.bucket):
            raise SystemExit(f"S3 source {url!r}: expected http(s)://HOST:PORT/BUCKET[/PREFIX]")

    def make_client(self):
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"}, connect_timeout=10, read_timeout=60, retries={"max_attempts": 3}
        )
        return boto_session().client("s3", endpoint_url=self.endpoint, region_name="us-east-1", config=config)

    def _connect(self):
        self.s3 = self.make_client()

    def _get(self, key, size):
        return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def _put(self, key, data):
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def create_bucket(self):
        self._client()
        try:
            self.s3.create_bucket(Bucket=self.bucket)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass


def ceph_conf():
    conf = os.environ.get("CEPH_CONF")
    if not conf:
        raise SystemExit("RADOS and CephFS sources need CEPH_CONF (the cluster's ceph.conf)")
    if DEBIAN_PYTHON not in sys.path:
        sys.path.append(DEBIAN_PYTHON)
    return conf


class RadosStore(Store):
    def __init__(self, spec):
        super().__init__()
        self.pool, _, prefix = spec.partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _connect(self):
        conf = ceph_conf()
        import rados

        self.cluster = rados.Rados(conffile=conf)
        self.cluster.connect(timeout=30)
        self.ioctx = self.cluster.open_ioctx(self.pool)

    def _get(self, key, size):
        return self.ioctx.read(self.prefix + key, length=max(size, 1))

    def _put(self, key, data):
        self.ioctx.write_full(self.prefix + key, data)

    def _close(self):
        self.ioctx.close()
        self.cluster.shutdown()


class CephFSStore(Store):
    def __init__(self, root):
        super().__init__()
        self.root = "/" + root.strip("/")

    def _connect(self):
        conf = ceph_conf()
        import cephfs

        self.fs = cephfs.LibCephFS(conffile=conf)
        self.fs.conf_set("client_mount_timeout", "30")
        self.fs.mount()

    def _get(self, key, size):
        fd = self.fs.open(f"{self.root}/{key}", "r")
        try:
            return self.fs.read(fd, 0, max(size, 1))
        finally:
            self.fs.close(fd)

    def _put(self, key, data):
        import cephfs

        parts = f"{self.root}/{key}".strip("/").split("/")
        for depth in range(1, len(parts)):
            try:
                self.fs.mkdir("/" + "/".join(parts[:depth]), 0o755)
            except cephfs.ObjectExists:
                pass
        fd = self.fs.open(f"{self.root}/{key}", "w", 0o644)
        try:
            self.fs.write(fd, data, 0)
        finally:
            self.fs.close(fd)

    def _close(self):
        self.fs.unmount()
        self.fs.shutdown()


def parse_source(spec):
    """(kind, Store) of a --source."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise SystemExit(
            f"--source {spec!r}: expected KIND:WHERE (local, local-shards, memmap, rgw, rgw-shards, rados, cephfs)"
        )
    stores = {
        "local": LocalStore,
        "local-shards": LocalStore,
        "memmap": LocalStore,
        "rgw": S3Store,
        "rgw-shards": S3Store,
        "rados": RadosStore,
        "cephfs": CephFSStore,
    }
    if kind not in stores:
        raise SystemExit(f"--source {spec!r}: unknown kind {kind!r}; known: {', '.join(stores)}")
    return kind, stores[kind](rest)


# -- data sets ---------------------------------------------------------------------------------


class Samples(Dataset):
    """One object per sample, read when the sample is asked for."""

    def __init__(self, store, index):
        self.store, self.index = store, index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        key, size = self.index[i]
        return to_sample(key, self.store.get(key, size))


class Mapped(Dataset):
    """Samples packed in one file, sliced out of a memory mapping of it (mapped in each process on
    first use), as token files and Arrow data sets are read."""

    def __init__(self, root, index):
        self.path, self.index, self.rows = os.path.join(root, PACKED), index, None

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        if self.rows is None:
            self.rows = np.memmap(self.path, dtype=np.uint8, mode="r")
        key, offset, size = self.index[i]
        return to_sample(key, self.rows[offset : offset + size].tobytes())


def drop_cached(path):
    """Drop the file's pages from the page cache, so that the mapped reads read storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages (just placed) are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class InMemory(Dataset):
    """A preloaded share: (key, raw bytes) pairs; __getitem__ only decodes."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        key, raw = self.items[i]
        return to_sample(key, raw)


def shard_members(raw):
    """(member name, bytes) of one tar shard, in order."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


class ShardStream(IterableDataset):
    """This rank's shards (rank::world), reshuffled every epoch and split among the workers;
    each shard is one whole GET, its samples pass through a shuffle buffer."""

    def __init__(self, store, shards, rank, world, buffer, seed):
        self.store, self.shards = store, shards[rank::world]
        self.rank, self.buffer, self.seed, self.epoch = rank, buffer, seed, 0

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}")
        order = list(self.shards)
        rng.shuffle(order)
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}-{worker}")
        pending = []
        for key, size, _count in order[worker::workers]:
            for item in shard_members(self.store.get(key, size)):
                pending.append(item)
                if len(pending) > self.buffer:
                    j = rng.randrange(len(pending))
                    pending[j], pending[-1] = pending[-1], pending[j]
                    name, raw = pending.pop()
                    yield to_sample(name, raw)
        rng.shuffle(pending)
        for name, raw in pending:
            yield to_sample(name, raw)


def _read_index(store, kind):
    name = SHARD_INDEX if kind in SHARD_KINDS else PACKED_INDEX if kind == "memmap" else INDEX
    try:
        return json.loads(store.get(name, INDEX_MAX_BYTES))
    except Exception as err:  # any backend's "not found": say what to run
        raise SystemExit(f"cannot read the data set's {name} from {kind} ({err}); run with --place first") from err
    finally:
        store.close()


def read_index(store, kind):
    """The data set's index. librados and libcephfs must not be initialised in a process that
    later forks DataLoader workers (a forked worker's mount then times out), so for RADOS and
    CephFS a short-lived child process reads it."""
    if kind not in ("rados", "cephfs"):
        return _read_index(store, kind)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(_read_index, store, kind).result()


def preload(store, kind, index, args):
    """This rank's share of the data set in memory, as (key, raw bytes)."""
    if kind in SHARD_KINDS:
        items = []
        for key, size, _count in index[args.rank :: args.world]:
            items.extend(shard_members(store.get(key, size)))
    else:
        # An unshuffled DistributedSampler's share: rank, rank + world, ... padded to equal size.
        total = -(-len(index) // args.world) * args.world
        share = [index[i % len(index)] for i in range(args.rank, total, args.world)]
        store.get(*share[0])  # connects once, before the threads share the client
        with ThreadPoolExecutor(max_workers=args.preload_threads) as pool:
            raws = list(pool.map(lambda item: store.get(*item), share))
        items = [(key, raw) for (key, _size), raw in zip(share, raws, strict=True)]
    store.close()  # before the DataLoader forks its workers
    return items


# -- placing the data set ----------------------------------------------------------------------


def place(args, kind, store):
    """Generate --data if needed, then copy it to the source (shards packed for the shard kinds)."""
    gen = argparse.Namespace(data=args.data, samples=args.samples, seed=args.seed, rank=0, world=1)
    extra = {"raw_share": args.raw_share} if args.raw_share else {}
    common.prepare_data(gen, lambda root, n, rng: generate(root, n, rng, args.raw_share), **extra)
    index = json.loads(Path(args.data, INDEX).read_text())
    if kind == "local" and os.path.realpath(store.root) == os.path.realpath(args.data):
        return f"{len(index)} samples in {args.data}"
    if isinstance(store, S3Store):
        store.create_bucket()
    if kind == "memmap":
        packed, offset = [], 0
        Path(store.root).mkdir(parents=True, exist_ok=True)
        with open(Path(store.root, PACKED), "wb") as out:
            for name, nbytes in index:
                out.write(Path(args.data, name).read_bytes())
                packed.append([name, offset, nbytes])
                offset += nbytes
        store.put(PACKED_INDEX, json.dumps(packed).encode())
        return f"{len(index)} samples in {PACKED} ({offset} bytes)"
    if kind in SHARD_KINDS:
        shards, members, size = [], [], 0
        for name, nbytes in index:
            if members and size + nbytes + 1024 > args.shard_bytes:
                shards.append(members)
                members, size = [], 0
            members.append(name)
            size += nbytes + 1024  # tar header and padding
        shards.append(members)
        shard_index = []
        for number, names in enumerate(shards):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name in names:
                    data = Path(args.data, name).read_bytes()
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(data), 0
                    tar.addfile(info, io.BytesIO(data))
            key = f"shard-{number:05d}.tar"
            store.put(key, buf.getvalue())
            shard_index.append([key, len(buf.getvalue()), len(names)])
        store.put(SHARD_INDEX, json.dumps(shard_index).encode())
        return f"{len(index)} samples in {len(shard_index)} shards"

    def put(item):
        store.put(item[0], Path(args.data, item[0]).read_bytes())

    if kind in ("rados", "cephfs"):
        for item in index:  # librados / libcephfs handles are per-thread-safe, but keep it simple
            put(item)
    else:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(put, index))
    store.put(INDEX, json.dumps(index).encode())
    return f"{len(index)} samples"


# -- training ----------------------------------------------------------------------------------


def wait_at_barrier(folder, rank):
    folder = Path(folder)
    (folder / f"ready-{rank}").touch()
    deadline = time.monotonic() + 300
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no {folder / 'go'} within 300 s")
        time.sleep(0.002)


def cpu_seconds(children=True):
    """User + system CPU of this process and, unless ``children`` is false, its reaped children
    (the DataLoader workers)."""
    usages = [resource.getrusage(resource.RUSAGE_SELF)]
    if children:
        usages.append(resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(u.ru_utime + u.ru_stime for u in usages)


def main(args):
    kind, store = parse_source(args.source)
    if args.place:
        print(f"placed {place(args, kind, store)} at {args.source}", flush=True)
        return
    if not 0 <= args.rank < args.world:
        raise SystemExit(f"--rank {args.rank} must be in 0..{args.world - 1}")
    args.device = torch.device("cpu")
    torch.manual_seed(args.seed + args.rank)
    if isinstance(store, S3Store):
        store.make_client()  # loads botocore's service model once, before the workers fork
    index = read_index(store, kind)
    if kind == "memmap":
        if args.preload:
            raise SystemExit("--preload: a memmap source is read through its mapping, not preloaded")
        drop_cached(os.path.join(store.root, PACKED))
    if args.start_barrier:
        wait_at_barrier(args.start_barrier, args.rank)
    cpu0, main_cpu0 = cpu_seconds(), cpu_seconds(children=False)
    t_start = time.monotonic()
    preload_s = 0.0
    if args.preload:
        dataset = InMemory(preload(store, kind, index, args))
        preload_s = time.monotonic() - t_start
        loader = common.make_loader(args, dataset, distributed=False, persistent_workers=args.persistent_workers)
    elif kind in SHARD_KINDS:
        dataset = ShardStream(store, index, args.rank, args.world, args.shuffle_buffer, args.seed)
        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            num_workers=args.workers,
            persistent_workers=args.persistent_workers and args.workers > 0,
            prefetch_factor=args.prefetch_factor if args.workers > 0 else None,
            multiprocessing_context=args.start_method if args.workers > 0 else None,
        )
    elif kind == "memmap":
        dataset = Mapped(store.root, index)
        loader = common.make_loader(args, dataset, distributed=True, persistent_workers=args.persistent_workers)
    else:
        dataset = Samples(store, index)
        loader = common.make_loader(args, dataset, distributed=True, persistent_workers=args.persistent_workers)
    steps = samples = 0
    for epoch in range(args.epochs):
        if isinstance(dataset, ShardStream):
            dataset.epoch = epoch  # read by the workers (a persistent worker keeps its own copy)
        elif hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        batches = iter(loader)
        if not args.preload and epoch == 0:
            t_start = time.monotonic()  # the first batch request
        for _images, labels in batches:
            if args.step_time > 0:
                time.sleep(args.step_time)
            steps += 1
            samples += len(labels)
    t_end = time.monotonic()
    del batches, loader  # shuts persistent workers down, so that their CPU time is counted
    report = {
        "reference_train": 1,
        "source": kind,
        "rank": args.rank,
        "world": args.world,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "step_time_s": args.step_time,
        "preload": args.preload,
        "steps": steps,
        "samples": samples,
        "preload_s": round(preload_s, 4),
        "time_to_train_s": round(t_end - t_start, 4),
        "start_monotonic": t_start,
        "end_monotonic": t_end,
        "cpu_s": round(cpu_seconds() - cpu0, 3),
        "main_cpu_s": round(cpu_seconds(children=False) - main_cpu0, 3),
    }
    print(json.dumps(report), flush=True)


def options(p):
    p.add_argument("--source", help="where the data set is read from (default: local:--data); see above")
    p.add_argument("--place", action="store_true", help="generate --data if needed, copy it to --source, exit")
    p.add_argument("--rank", type=int, default=0, help="this process's rank (no torch.distributed)")
    p.add_argument("--world", type=int, default=1, help="processes (stand-in nodes) sharing the data set")
    p.add_argument("--preload", action="store_true", help="read the whole share into memory first")
    p.add_argument("--preload-threads", type=int, default=8, help="threads of a per-sample preload")
    p.add_argument("--persistent-workers", action="store_true", help="keep DataLoader workers across epochs")
    p.add_argument("--shuffle-buffer", type=int, default=1000, help="shard sources: samples in the shuffle buffer")
    p.add_argument(
        "--shard-bytes", type=int, default=4 << 20, help="--place of a shard source: bytes per shard at most"
    )
    p.add_argument("--start-barrier", help="folder: write ready-RANK there, start when a file 'go' appears")
    p.add_argument(
        "--raw-share", type=float, default=0.0, help="--place: share of the samples that are raw bytes, not JPEGs"
    )


if __name__ == "__main__":
    args = common.parse_args("reference_train", __doc__, samples=2000, batch_size=32, extra=options)
    if args.step_time is None:
        args.step_time = 0.02
    args.source = args.source or f"local:{args.data}"
    main(args)
