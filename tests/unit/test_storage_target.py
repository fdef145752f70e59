"""replay/storage/target.py: the one target grammar, and each command's kinds."""

from __future__ import annotations

import pytest

from trainio.replay.calibration.calibrate import target_of as calibrate_target
from trainio.replay.real.fioreplay import target_of as fio_target
from trainio.replay.storage.target import TargetError, parse_target


@pytest.mark.parametrize(
    ("text", "kind", "fields"),
    [
        ("rbd:rbd/img", "rbd", {"pool": "rbd", "image": "img"}),
        ("rados:trainpool", "rados", {"pool": "trainpool"}),
        ("cephfs:/data//set/", "cephfs", {"path": "/data/set"}),
        ("/mnt/nvme/x", "directory", {"path": "/mnt/nvme/x"}),
        ("nfs:/x", "directory", {"path": "nfs:/x"}),  # no known scheme: a (relative) directory
        ("rgw:http://127.0.0.1:7480/bucket", "rgw", {"endpoint": "http://127.0.0.1:7480", "bucket": "bucket"}),
        ("s3:https://s3.example.com/b/", "rgw", {"endpoint": "https://s3.example.com", "bucket": "b"}),
    ],
)
def test_targets_parse_into_their_kind(text, kind, fields):
    target = parse_target(text)
    assert (target.kind, target.text) == (kind, text)
    assert {k: getattr(target, k) for k in fields} == fields


@pytest.mark.parametrize(
    "text",
    [
        "rbd:pool",
        "rbd:/img",
        "rbd:p/i/j",
        "rados:",
        "rados:a/b",
        "cephfs:rel",
        "cephfs:",
        "cephfs:/",
        "cephfs://host/x",
        "rgw:http://127.0.0.1:7480",
        "rgw:ftp://h/b",
        "s3:http://h/a/b",
        "",
    ],
)
def test_malformed_targets_are_refused_naming_them(text):
    with pytest.raises(TargetError, match="target") as exc:
        parse_target(text)
    assert "\n" not in str(exc.value)


def test_a_directory_target_expands_home_and_is_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_target("~/data").directory == tmp_path / "data"


def test_each_command_names_the_kinds_it_takes_when_given_another(tmp_path):
    with pytest.raises(TargetError, match=r"rgw:.*which replay fio does not take: expected DIR, rbd:POOL/IMAGE"):
        fio_target("rgw:http://127.0.0.1:7480/b")
    with pytest.raises(TargetError, match=r"rbd:POOL/IMAGE, which replay calibrate does not take: expected DIR, "):
        calibrate_target("rbd:rbd/img")
    assert fio_target(str(tmp_path / "new")).kind == "directory"  # replay fio lays the data set out


def test_calibrate_measures_only_a_directory_that_exists(tmp_path):
    assert calibrate_target(str(tmp_path)).directory == tmp_path
    with pytest.raises(TargetError, match="is not a directory, nor rados:POOL"):
        calibrate_target(str(tmp_path / "missing"))
