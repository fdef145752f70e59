"""replay/storage without a cluster: the one Ceph configuration rule, the bytes trainio writes, a
directory's room, and the dev Ceph's port choice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from scripts.ceph_dev import CephDevError, free_base
from trainio.replay.calibration.calibrate import calibrate
from trainio.replay.real.fioreplay import replay_fio
from trainio.replay.storage import ceph
from trainio.replay.storage.directory import DirectoryStore
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import ensure_layout
from trainio.replay.storage.seeded import PART_BYTES, seeded_part, seeded_parts, write_seeded_file

BUNDLED = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"


def test_ceph_conf_is_ceph_conf_when_set(monkeypatch, tmp_path):
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\n")
    monkeypatch.setenv("CEPH_CONF", str(conf))
    assert ceph.ceph_conf() == str(conf)


def test_ceph_conf_falls_back_to_the_system_file(monkeypatch, tmp_path):
    system = tmp_path / "etc-ceph.conf"
    system.write_text("[global]\n")
    monkeypatch.delenv("CEPH_CONF", raising=False)
    monkeypatch.setattr(ceph, "DEFAULT_CEPH_CONF", str(system))
    assert ceph.ceph_conf() == str(system)


def test_a_missing_ceph_conf_is_one_error_for_every_command(monkeypatch, tmp_path):
    missing = tmp_path / "nope.conf"
    monkeypatch.setenv("CEPH_CONF", str(missing))
    with pytest.raises(ReplayError, match=rf"CEPH_CONF\(='{missing}'\) is not a file") as fio_error:
        replay_fio(BUNDLED, "cephfs:/trainio", tmp_path / "work")
    with pytest.raises(ReplayError) as calibrate_error:
        calibrate("cephfs:/trainio", tmp_path / "x.toml", budget_s=10)
    assert str(fio_error.value) == str(calibrate_error.value)
    monkeypatch.delenv("CEPH_CONF")
    monkeypatch.setattr(ceph, "DEFAULT_CEPH_CONF", str(missing))
    with pytest.raises(ReplayError, match=f"CEPH_CONF is not set and {missing} does not exist"):
        calibrate("rados:pool", tmp_path / "x.toml", budget_s=10)
    assert not (tmp_path / "x.toml").exists()


def test_seeded_parts_can_be_made_alone_and_a_file_holds_the_same_bytes(tmp_path):
    size = PART_BYTES + 1000
    whole = b"".join(part for _, part in seeded_parts("a/b.bin", size, 7))
    assert len(whole) == size and whole[PART_BYTES:] == seeded_part("a/b.bin", PART_BYTES, 1000, 7)
    write_seeded_file(tmp_path / "f", "a/b.bin", size, 7)
    assert (tmp_path / "f").read_bytes() == whole
    assert seeded_part("a/c.bin", 0, 100, 7) != whole[:100] != seeded_part("a/b.bin", 0, 100, 8)
    with pytest.raises(ValueError, match="multiple of"):
        seeded_part("a/b.bin", 5, 10, 7)


def test_layout_keeps_its_right_sized_files_and_writes_only_what_is_missing_or_changed(tmp_path):
    sizes = {"x/a.bin": 100, "b.bin": 50}
    store = DirectoryStore(tmp_path / "root")
    first = ensure_layout(store, sizes, purpose="replay")
    assert (first.files, first.bytes, first.written, first.bytes_written, first.reused) == (2, 150, 2, 150, False)
    assert ensure_layout(store, sizes, purpose="replay").reused
    (tmp_path / "root" / "b.bin").write_bytes(b"z" * 10)  # trainio's file, changed: trainio may rewrite it
    again = ensure_layout(store, sizes, purpose="replay")
    assert (again.written, again.bytes_written) == (1, 50) and (tmp_path / "root" / "b.bin").stat().st_size == 50


def test_the_dev_ceph_skips_a_port_base_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        for base in (port, port - 2, port - 10):  # the mon, the RGW (BASE+2), the other daemons (BASE+10)
            with pytest.raises(CephDevError, match=rf"no free Ceph port base among \({base},\)"):
                free_base((base,))
