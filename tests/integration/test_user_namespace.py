"""A training repository with its own ``models/`` package and ``tracer.py``: trainio changes neither.

Nearly every training repository has a ``models/``; many have a ``tracer.py``. trainio imports under
``trainio.`` only, so neither ``replay`` run from such a folder nor a capture of its training sees
them, and the training sees its own modules, not ours.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import run_cli, summary_json

TRAIN = """
import os
import subprocess
import sys
import torch
from torch.utils.data import DataLoader, Dataset

import models
import tracer


class Files(Dataset):
    def __init__(self, root):
        self.paths = sorted(root.glob("*.bin"))

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).float().mean()


if __name__ == "__main__":
    from pathlib import Path

    loader = DataLoader(Files(Path(sys.argv[1])), batch_size=4, num_workers=2)
    total = sum(float(batch.sum()) for batch in loader)
    print(f"NAME={tracer.NAME} MODEL={models.MODEL} total={total:.3f}")
"""


def _user_repo(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    # Importing this package by mistake leaves a mark and breaks the importer.
    (root / "models" / "__init__.py").write_text(
        "import os, sys\n"
        "if os.environ.get('EXPECT_USER_MODELS') != '1':\n"
        "    open(os.path.join(os.path.dirname(__file__), '..', 'IMPORTED'), 'w').close()\n"
        "    raise ImportError('the user package models/ was imported by trainio')\n"
        "MODEL = 'resnet-user'\n"
    )
    (root / "tracer.py").write_text("NAME = 'user-tracer'\n")
    (root / "train.py").write_text(TRAIN)
    data = root / "data"
    data.mkdir()
    for i in range(16):
        (data / f"{i:03d}.bin").write_bytes(bytes([i]) * (8192 + 512 * i))
    return data


def test_replay_run_from_a_folder_with_its_own_models_package_ignores_it(tmp_path):
    _user_repo(tmp_path)
    proc = run_cli("replay", "backends", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rgw" in proc.stdout
    assert not (tmp_path / "IMPORTED").exists()


def test_capture_leaves_the_users_models_and_tracer_modules_to_the_user(tmp_path):
    data = _user_repo(tmp_path)
    untraced = subprocess.run(
        [sys.executable, "train.py", str(data)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EXPECT_USER_MODELS": "1"},
    )
    assert untraced.returncode == 0, untraced.stderr
    trace = tmp_path / "trace"
    proc = run_cli(
        "tracer",
        "capture",
        "--out",
        trace,
        "--",
        sys.executable,
        "train.py",
        data,
        cwd=tmp_path,
        env={"EXPECT_USER_MODELS": "1"},
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    # The same line as untraced: the user's tracer.NAME and models.MODEL, the same numbers.
    assert proc.stdout.strip() == untraced.stdout.strip()
    assert "NAME=user-tracer MODEL=resnet-user" in proc.stdout
    digest = summary_json(trace)
    assert digest["bytes_read"] == sum(f.stat().st_size for f in data.iterdir())
    assert digest["samples"] == 16
