"""What trainio writes (replay/storage/layout.py, directory.py, workdir.py): never over, through or in place of
anything it did not create; a layout root of its own, marked by a manifest it checks before reusing it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainio.replay.storage.directory import DirectoryStore
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import (
    BLOCKED,
    FILE,
    LINK,
    MANIFEST_NAME,
    MISSING,
    ForeignDataError,
    Found,
    Inspection,
    LayoutManifest,
    LayoutManifestError,
    ensure_layout,
    plan_layout,
    read_manifest,
)
from trainio.replay.storage.workdir import MARKER, claim_workdir, subfolder, work_folder

SIZES = {"train/a.jpg": 100, "train/b.jpg": 50}


def manifest(entries: dict[str, int], status: str = "complete") -> LayoutManifest:
    return LayoutManifest("replay", status, 0, entries)


def inspection(found: dict[str, Found], *, listed: dict[str, int] | None = None, others=()) -> Inspection:
    return Inspection("/t", None if listed is None else manifest(listed), tuple(others), found)


# ------------------------------------------------------------------------------ the rules, on their own


def test_a_new_or_empty_root_is_laid_out_whole():
    plan = plan_layout(inspection({n: Found(MISSING) for n in SIZES}), SIZES, purpose="replay")
    assert plan.write == tuple(sorted(SIZES)) and plan.manifest.status == "writing"
    assert plan.done.status == "complete" and plan.done.entries == SIZES


def test_a_root_holding_other_data_without_a_manifest_is_refused_unless_overwrite():
    seen = inspection({n: Found(MISSING) for n in SIZES}, others=("notes.txt",))
    with pytest.raises(ForeignDataError, match=r"/t holds data trainio did not write \(/t/notes.txt; no "):
        plan_layout(seen, SIZES, purpose="replay")
    assert plan_layout(seen, SIZES, purpose="replay", overwrite=True).write == tuple(sorted(SIZES))


@pytest.mark.parametrize("size", [10, 100, 1000])
def test_a_needed_name_trainio_did_not_write_is_refused_whatever_its_size(size):
    seen = inspection({"train/a.jpg": Found(FILE, size), "train/b.jpg": Found(MISSING)}, listed={})
    with pytest.raises(ForeignDataError, match="holds data trainio did not write where the layout goes"):
        plan_layout(seen, SIZES, purpose="replay")
    assert "train/a.jpg" in plan_layout(seen, SIZES, purpose="replay", overwrite=True).write


def test_what_the_manifest_lists_is_kept_when_right_and_rewritten_when_not():
    seen = inspection({"train/a.jpg": Found(FILE, 100), "train/b.jpg": Found(FILE, 7)}, listed={**SIZES, "old": 3})
    plan = plan_layout(seen, SIZES, purpose="replay")
    assert plan.write == ("train/b.jpg",) and plan.done.entries == {**SIZES, "old": 3}
    whole = inspection({n: Found(FILE, s) for n, s in SIZES.items()}, listed=SIZES)
    assert plan_layout(whole, SIZES, purpose="replay").reused


def test_a_link_is_never_written_through_and_replaced_only_with_overwrite():
    seen = inspection({"train/a.jpg": Found(LINK), "train/b.jpg": Found(MISSING)}, listed={"train/a.jpg": 100})
    with pytest.raises(ForeignDataError, match="a symbolic link where the layout puts a file"):
        plan_layout(seen, SIZES, purpose="replay")
    assert "train/a.jpg" in plan_layout(seen, SIZES, purpose="replay", overwrite=True).write


def test_a_folder_or_a_link_on_the_way_is_refused_even_with_overwrite():
    seen = inspection({"train/a.jpg": Found(BLOCKED, why="a folder where the layout puts a file")}, listed={})
    with pytest.raises(ForeignDataError, match="/t/train/a.jpg: a folder where the layout puts a file"):
        plan_layout(seen, {"train/a.jpg": 1}, purpose="replay", overwrite=True)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b'{"format": "trainio-layout", "format_', "not JSON"),
        (b'{"format": "something-else"}', "format is not 'trainio-layout'"),
        (b'{"format": "trainio-layout", "format_version": "9.0", "entries": {}, "seed": 0}', "newer than this"),
        (b'{"format": "trainio-layout", "format_version": "1.0", "entries": {"a": -1}, "seed": 0}', "entries"),
        (b'{"format": "trainio-layout", "format_version": "1.0", "entries": {}, "seed": "x"}', "seed"),
        (b"[1, 2]", "format is not"),
    ],
)
def test_a_damaged_foreign_or_future_manifest_is_refused_naming_it(text, reason):
    with pytest.raises(LayoutManifestError, match=f"m.json is not a layout manifest trainio can read.*{reason}"):
        read_manifest(text, "m.json")


def test_a_manifest_reads_back_what_was_written():
    written = manifest(SIZES, "writing")
    assert read_manifest(written.text(), "m") == written


# ------------------------------------------------------------------------------ a directory


def test_a_users_smaller_file_in_the_target_is_never_overwritten(tmp_path):
    # issue 13: "MY PRECIOUS" of 12 bytes became 7,904 random bytes
    precious = tmp_path / "t" / "train" / "a.jpg"
    precious.parent.mkdir(parents=True)
    precious.write_text("MY PRECIOUS\n")
    with pytest.raises(ForeignDataError, match="holds data trainio did not write"):
        ensure_layout(DirectoryStore(tmp_path / "t"), SIZES, purpose="replay")
    assert precious.read_text() == "MY PRECIOUS\n" and not (tmp_path / "t" / MANIFEST_NAME).exists()
    assert sorted(p.name for p in (tmp_path / "t").rglob("*")) == ["a.jpg", "train"]


def test_a_folder_link_in_the_target_is_never_followed_even_with_overwrite(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "train").symlink_to(outside)
    for overwrite in (False, True):
        with pytest.raises(ForeignDataError, match=r"a symbolic link on the way \(train\)"):
            ensure_layout(DirectoryStore(tmp_path / "t"), SIZES, purpose="replay", overwrite=overwrite)
    assert list(outside.iterdir()) == []


def test_a_file_link_is_replaced_with_overwrite_and_its_target_left_alone(tmp_path):
    theirs = tmp_path / "theirs.jpg"
    theirs.write_text("keep me")
    (tmp_path / "t" / "train").mkdir(parents=True)
    (tmp_path / "t" / "train" / "a.jpg").symlink_to(theirs)
    (tmp_path / "t" / MANIFEST_NAME).write_text(manifest({"train/a.jpg": 100}).text())  # even where trainio's
    with pytest.raises(ForeignDataError, match="a symbolic link where the layout puts a file"):
        ensure_layout(DirectoryStore(tmp_path / "t"), SIZES, purpose="replay")
    ensure_layout(DirectoryStore(tmp_path / "t"), SIZES, purpose="replay", overwrite=True)
    assert theirs.read_text() == "keep me"
    laid = tmp_path / "t" / "train" / "a.jpg"
    assert not laid.is_symlink() and laid.stat().st_size == 100


def test_a_folder_where_a_traced_file_goes_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "t" / "train" / "b.jpg").mkdir(parents=True)
    (tmp_path / "t" / MANIFEST_NAME).write_text(manifest({}).text())
    with pytest.raises(ForeignDataError, match="train/b.jpg: a folder .* where the layout puts a file"):
        ensure_layout(DirectoryStore(tmp_path / "t"), SIZES, purpose="replay", overwrite=True)
    assert not (tmp_path / "t" / "train" / "a.jpg").exists()
    assert json.loads((tmp_path / "t" / MANIFEST_NAME).read_text())["entries"] == {}


def test_a_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ForeignDataError, match="is not a directory"):
        DirectoryStore(tmp_path / "f")


def test_a_layout_cut_short_is_not_marked_complete_and_is_finished_next_time(tmp_path, monkeypatch):
    store = DirectoryStore(tmp_path / "t")
    from trainio.replay.storage import directory

    real = directory.seeded_parts

    def failing(name, size, seed):  # fault injection: the disk fills up on the second file
        if name == "train/b.jpg":
            raise OSError(28, "No space left on device", str(tmp_path / "t" / name))
        return real(name, size, seed)

    monkeypatch.setattr(directory, "seeded_parts", failing)
    with pytest.raises(ReplayError, match="No space left on device"):
        ensure_layout(store, SIZES, purpose="replay")
    assert json.loads((tmp_path / "t" / MANIFEST_NAME).read_text())["status"] == "writing"
    monkeypatch.setattr(directory, "seeded_parts", real)
    again = ensure_layout(store, SIZES, purpose="replay")
    assert again.written == 1 and json.loads((tmp_path / "t" / MANIFEST_NAME).read_text())["status"] == "complete"


def test_remove_deletes_only_what_trainio_wrote(tmp_path):
    store = DirectoryStore(tmp_path / "t")
    ensure_layout(store, SIZES, purpose="calibrate")
    (tmp_path / "t" / "train" / "theirs.txt").write_text("x")
    assert store.remove(SIZES) == 150
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["t", "t/train", "t/train/theirs.txt"]


# ------------------------------------------------------------------------------ the work folder


def test_a_users_folder_is_no_work_folder_unless_overwrite(tmp_path):
    mine = tmp_path / "w"
    mine.mkdir()
    (mine / "mapping.tsv").write_text("my own\n")
    with pytest.raises(ForeignDataError, match="--workdir .* holds files trainio did not write \\(mapping.tsv\\)"):
        claim_workdir(mine)
    assert claim_workdir(mine, overwrite=True) == mine and (mine / MARKER).is_file()
    assert claim_workdir(mine) == mine  # marked: trainio's from now on


def test_a_link_in_the_work_folder_is_refused_never_followed(tmp_path):
    work = claim_workdir(tmp_path / "w")
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "iolog").symlink_to(outside)
    with pytest.raises(ForeignDataError, match="is not a folder trainio made"):
        subfolder(work, "iolog")
    with pytest.raises(ForeignDataError, match="is not a directory"):
        claim_workdir(tmp_path / "w" / "iolog")


def test_a_temporary_work_folder_is_removed_when_the_work_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(RuntimeError), work_folder(None, prefix="trainio-fio-") as folder:
        assert folder.parent == tmp_path and folder.name.startswith("trainio-fio-")
        raise RuntimeError("the replay failed")
    assert os.listdir(tmp_path) == []
    with work_folder(None, prefix="trainio-fio-") as kept:
        pass
    assert Path(kept).is_dir()


def test_the_readme_never_calibrates_into_the_bucket_it_replays_into():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    replays = {line.split("--bucket ")[1].split()[0] for line in readme.splitlines() if "replay s3 " in line}
    calibrated = {
        line.split("--target ")[1].split()[0].rsplit("/", 1)[1]
        for line in readme.splitlines()
        if "replay calibrate --target rgw:" in line or "replay calibrate --target s3:" in line
    }
    assert replays and calibrated and not replays & calibrated, (replays, calibrated)
