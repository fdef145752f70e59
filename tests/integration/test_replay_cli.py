"""``replay`` as a user runs it: stable JSON keys, readable tables, one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli

TRACE = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"
CONTRACT = {
    "time_to_train_s",
    "per_epoch_s",
    "accelerator_utilization",
    "stall_fraction",
    "read_MBps",
    "read_ops_per_s",
    "backend_capacity",
    "bottleneck",
    "bottleneck_evidence",
}


def test_what_if_json_has_the_contract_keys():
    proc = run_cli("replay", "what-if", "--trace", TRACE, "--nodes", "4", "--backend", "rgw", "--json", check=True)
    result = json.loads(proc.stdout)
    assert CONTRACT <= set(result)
    assert result["nodes"] == 4 and result["backend"] == "rgw" and len(result["per_epoch_s"]) == 2
    assert result["time_to_train_s"] == pytest.approx(sum(result["per_epoch_s"]) + result["preload_s"], rel=1e-6)


def test_stage_in_adds_the_copy_and_the_time_to_value():
    args = ("replay", "what-if", "--trace", TRACE, "--nodes", "4", "--backend", "cephfs", "--json")
    straight = json.loads(run_cli(*args, check=True).stdout)
    assert straight["stage_in_s"] == 0 and straight["time_to_value_s"] == straight["time_to_train_s"]
    assert (straight["local_reserved_bytes"], straight["eligible_node_fraction"]) == (0, 1)
    copied = json.loads(run_cli(*args, "--stage-in", "local-nvme", "--nodes-with-space", "0.25", check=True).stdout)
    assert copied["backend"] == "cephfs" and copied["staging"]["target"] == "local-nvme"
    assert copied["time_to_value_s"] == pytest.approx(copied["stage_in_s"] + copied["time_to_train_s"])
    assert copied["stage_in_s"] > 0 and copied["eligible_node_fraction"] == 0.25
    assert copied["staging"]["whole_dataset"] and copied["local_reserved_bytes"] > 0
    table = run_cli(*args[:-1], "--stage-in", "local-nvme", "--local-capacity", "1MB", check=True).stdout
    assert "cannot stage" in table and "time to value      none" in table


def test_no_page_cache_is_an_option_of_what_if():
    args = ("replay", "what-if", "--trace", TRACE, "--backend", "nfs", "--epochs", "3", "--json")
    cached = json.loads(run_cli(*args, check=True).stdout)
    uncached = json.loads(run_cli(*args, "--no-page-cache", check=True).stdout)
    assert cached["page_cache_hit_ratio"] == [0.0, 1.0, 1.0]
    assert uncached["page_cache_hit_ratio"] == [0.0, 0.0, 0.0]


def test_what_if_table_names_the_bottleneck_and_the_captured_time():
    out = run_cli("replay", "what-if", "--trace", TRACE, check=True).stdout
    assert "time to train" in out and "captured run" in out and "bottleneck" in out


def test_backends_lists_every_profile_with_its_source():
    out = run_cli("replay", "backends", check=True).stdout
    for name in ("local-nvme", "local-ssd", "nfs", "cephfs", "rbd", "rgw", "s3"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    rows = json.loads(run_cli("replay", "backends", "--json", check=True).stdout)
    assert all(row["source"] for row in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "0"], "--nodes"),
        (["--backend", "lustre"], "known: as-captured"),
        (["--format", "shards:lots"], "shards:lots"),
        (["--format", "tfrecords"], "tfrecords"),
        (["--compute-scale", "-1"], "--compute-scale"),
        (["--model-bytes", "12 parsecs"], "--model-bytes"),
        (["--backend", "cephfs", "--stage-in", "nfs"], "cannot stage in to nfs: it is shared storage"),
        (["--backend", "cephfs", "--stage-in-shard"], "apply only with --stage-in"),
        (["--backend", "cephfs", "--stage-in", "local-nvme", "--nodes-with-space", "2"], "--nodes-with-space"),
        (["--backend", "cephfs", "--stage-in", "local-nvme", "--local-capacity", "lots"], "--local-capacity"),
    ],
)
def test_bad_options_are_one_line_errors_with_exit_code_2(args, message):
    proc = run_cli("replay", "what-if", "--trace", TRACE, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_value_given_to_a_flag_is_a_one_line_error_naming_the_program():
    # click raises this one before any context exists: the group's own name must stand in.
    proc = run_cli("replay", "what-if", "--trace", TRACE, "--page-cache=yes")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("replay: error: Option '--page-cache' does not take a value")


def test_a_missing_trace_names_the_path(tmp_path):
    proc = run_cli("replay", "what-if", "--trace", tmp_path / "nope")
    assert proc.returncode == 2 and str(tmp_path / "nope") in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_user_profile_with_an_unknown_key_names_file_and_key(tmp_path):
    profile = tmp_path / "mine.toml"
    text = (Path(__file__).resolve().parents[2] / "models" / "profiles" / "cephfs.toml").read_text()
    profile.write_text(text.replace("[backend]\n", '[backend]\nwarp_factor = "9"\n'))
    proc = run_cli("replay", "what-if", "--trace", TRACE, "--profile", profile)
    assert proc.returncode == 2
    assert "warp_factor" in proc.stderr and str(profile) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
