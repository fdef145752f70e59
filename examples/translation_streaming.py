"""Translation with streaming record reads (stand-in for MLPerf Transformer on WMT).

I/O pattern: one small index file is read at start; then every __getitem__
issues one os.pread of a few hundred bytes at a record's offset in one of a
few shard files, so small random reads are spread over every step.
"""

import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

SHARDS = 4
VOCAB = 1000
PAD, BOS = 0, 1  # real tokens are >= 2
MAX_LEN = 121  # longest target (120) plus BOS


def generate(root, samples, rng):
    # Record i = source then target tokens (int32), appended to shard i % SHARDS.
    index = np.zeros((samples, 4), np.int64)  # shard, byte offset, src len, tgt len
    for shard in range(SHARDS):
        with open(os.path.join(root, f"shard-{shard:02d}.bin"), "wb") as f:
            for i in range(shard, samples, SHARDS):
                src_len, tgt_len = rng.integers(20, 121, 2)
                index[i] = shard, f.tell(), src_len, tgt_len
                tokens = rng.integers(2, VOCAB, src_len + tgt_len, dtype=np.int32)
                f.write(tokens.tobytes())
    np.save(os.path.join(root, "index.npy"), index)


class Records(Dataset):
    def __init__(self, root):
        self.root = root
        self.index = np.load(os.path.join(root, "index.npy"))
        self.fds, self.pid = {}, None

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        if self.pid != os.getpid():  # each worker opens its own descriptors, lazily
            self.fds, self.pid = {}, os.getpid()
        shard, offset, src_len, tgt_len = (int(v) for v in self.index[i])
        if shard not in self.fds:
            path = os.path.join(self.root, f"shard-{shard:02d}.bin")
            self.fds[shard] = os.open(path, os.O_RDONLY)
        data = os.pread(self.fds[shard], 4 * (src_len + tgt_len), offset)
        tokens = torch.from_numpy(np.frombuffer(data, np.int32).astype(np.int64))
        return tokens[:src_len], tokens[src_len:]


def collate(pairs):
    """Pad to the batch's longest sequence; decoder input = BOS + target[:-1]."""
    src, tgt = zip(*pairs, strict=True)
    pad = nn.utils.rnn.pad_sequence
    tgt_in = [torch.cat([torch.tensor([BOS]), t[:-1]]) for t in tgt]
    return (
        pad(src, batch_first=True, padding_value=PAD),
        pad(tgt_in, batch_first=True, padding_value=PAD),
        pad(tgt, batch_first=True, padding_value=PAD),
    )


class TinyTranslator(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN, d)
        self.transformer = nn.Transformer(
            d,
            nhead=4,
            num_encoder_layers=2,
            num_decoder_layers=2,
            dim_feedforward=4 * d,
            dropout=0.0,
            batch_first=True,
        )
        self.out = nn.Linear(d, VOCAB)

    def forward(self, src, tgt_in):
        def emb(x):
            return self.embed(x) + self.pos(torch.arange(x.shape[1], device=x.device))

        # Boolean (True = masked) like the padding masks: mixing the two is deprecated.
        n = tgt_in.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=tgt_in.device).triu(1)
        h = self.transformer(
            emb(src),
            emb(tgt_in),
            tgt_mask=causal,
            tgt_is_causal=True,
            src_key_padding_mask=src == PAD,
            tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=src == PAD,
        )
        return self.out(h)


def translation_loss(model, batch):
    src, tgt_in, tgt_out = batch
    return nn.functional.cross_entropy(model(src, tgt_in).reshape(-1, VOCAB), tgt_out.view(-1), ignore_index=PAD)


def main(args):
    common.prepare_data(args, generate)
    t_start = time.time()
    loader = common.make_loader(args, Records(args.data), collate_fn=collate)
    common.train(args, loader, TinyTranslator(), translation_loss, t_start, lr=0.01)


if __name__ == "__main__":
    args = common.parse_args("translation_streaming", __doc__, samples=1024, batch_size=32)
    main(common.setup(args))
