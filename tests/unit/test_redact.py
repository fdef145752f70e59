"""Nothing that can authenticate is written: names, shapes and echoes of secrets (issue 13, item 7)."""

from __future__ import annotations

import json

import pytest

from trainio.replay.real.result import ReplayResult
from trainio.replay.storage.target import parse_target
from trainio.tracefile.redact import REDACTED, Redactor, looks_random, secret_name

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
GITHUB = "ghp_0123456789abcdefghijABCDEFGHIJklmnopqr"
HEX = "e41e62ce2ac49293f7f1eb79a5b5cc05559af667"

ENV = {
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "HF_TOKEN": "t0k3n-value",
    "db_password": "p4ssw0rd!",
    "MY_CREDENTIALS": "c-value",
    "MYSQL_PWD": "hunter22",
    "PGPASSWORD": "pgpass-1",
    "PGPASS": "pgpass-2",
    "GITHUB_PAT": "pat-value-1",
    "HF_AUTH": "auth-value",
    "WANDB_API_KEY": "wandb-value",
    "DATABASE_URL": "postgres://admin:pw789@db.internal:5432/train",
    "SOME_SETTING": JWT,
    "UPLOAD_URL": "https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F2024&X-Amz-Signature=abcdef0123",
    "RANDOM_BLOB": AWS_SECRET,
    "SESSION_HEX": HEX,
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/root",
    "PWD": "/work/run",
    "OLDPWD": "/work",
    "CUDA_VISIBLE_DEVICES": "0,1",
    "GIT_AUTHOR_NAME": "Ada",
    "S3_ENDPOINT": "http://127.0.0.1:8000",
    "LANG": "C.UTF-8",
    "KEYBOARD_LAYOUT": "us",
}
SECRETS = (
    "s3cr3t-value",
    "AKIAIOSFODNN7EXAMPLE",
    "t0k3n-value",
    "p4ssw0rd!",
    "c-value",
    "hunter22",
    "pgpass-1",
    "pgpass-2",
    "pat-value-1",
    "auth-value",
    "wandb-value",
    "pw789",
    JWT,
    "abcdef0123",
    "AKIA%2F2024",
    AWS_SECRET,
    HEX,
)


def test_environment_values_are_redacted_by_name_and_by_shape_and_the_rest_is_kept():
    env = Redactor(env=ENV).env(ENV)
    assert not [s for s in SECRETS if s in json.dumps(env)], env
    for name in ("PATH", "HOME", "PWD", "OLDPWD", "CUDA_VISIBLE_DEVICES", "GIT_AUTHOR_NAME", "S3_ENDPOINT", "LANG"):
        assert env[name] == ENV[name], name
    # A URL keeps where it points; only its credentials go.
    assert env["DATABASE_URL"] == f"postgres://{REDACTED}@db.internal:5432/train"
    assert env["UPLOAD_URL"].startswith("https://bucket.s3.amazonaws.com/k?X-Amz-Credential=<redacted>")
    assert list(env) == sorted(ENV)


ARGV_CASES = [
    (["--password", "pw789"], ["--password", REDACTED]),
    (["--api-key=k-123"], [f"--api-key={REDACTED}"]),
    (["--apiKey", "k-123"], ["--apiKey", REDACTED]),
    (["--hf-token", "x1"], ["--hf-token", REDACTED]),
    (["--db-pass", "x1"], ["--db-pass", REDACTED]),
    (["--credentials", "x1"], ["--credentials", REDACTED]),
    (["--auth", "u:p"], ["--auth", REDACTED]),
    (["--secret-file=x1"], [f"--secret-file={REDACTED}"]),
    (["--key", "x1"], ["--key", REDACTED]),
    (["trainer.logger.api_key=x1"], [f"trainer.logger.api_key={REDACTED}"]),
    (["PGPASSWORD=x1"], [f"PGPASSWORD={REDACTED}"]),
    (["-Dpassword=x1"], [f"-Dpassword={REDACTED}"]),
    (["--token", "--verbose"], ["--token", "--verbose"]),  # a flag followed by an option: nothing to hide
    (["--no-auth", "data/"], ["--no-auth", "data/"]),  # a negated flag takes no value
    (["https://user:pw789@host/x"], [f"https://{REDACTED}@host/x"]),
    (["--url=https://user:pw789@host/x"], [f"--url=https://{REDACTED}@host/x"]),
    (
        ["s3://b/k?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA%2F2024&X-Amz-Expires=60&sig=x1&token=x2"],
        [
            f"s3://b/k?X-Amz-Signature={REDACTED}&X-Amz-Credential={REDACTED}"
            f"&X-Amz-Expires=60&sig={REDACTED}&token={REDACTED}"
        ],
    ),
    (["-H", "Authorization: Bearer abcdefghijkl"], ["-H", f"Authorization: Bearer {REDACTED}"]),
    ([JWT], [REDACTED]),
    ([HF], [REDACTED]),
    ([GITHUB], [REDACTED]),
    ([HEX], [REDACTED]),
    ([f"--resume={AWS_SECRET}"], [f"--resume={REDACTED}"]),
]


@pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
def test_secret_options_urls_and_tokens_in_a_command_line_are_redacted(argv, expected):
    assert Redactor().argv(["python", "train.py", *argv]) == ["python", "train.py", *expected]


def test_an_ordinary_training_command_is_kept_as_it_is():
    argv = (
        "torchrun --nproc_per_node 8 train.py --data /data/imagenet/train --epochs 90 --lr 0.1 --batch-size 256 "
        f"--resume ckpt/ResNet50-ImageNet-2024.pt --seed 42 --keyframes 3 --run-name exp_2024-01-01 "
        f"--cache /data/hf/models--facebook--opt/snapshots/{HEX}/config.json --endpoint http://127.0.0.1:8000 "
        "dataset.root=/data/coco model.depth=50 -o out/"
    ).split()
    assert Redactor().argv(argv) == argv


def test_names_added_by_the_user_and_echoes_of_secret_environment_values_are_redacted():
    redactor = Redactor(["my-setting", "P"], env={"HF_TOKEN": "hf-value-123", "DATABASE_URL": ENV["DATABASE_URL"]})
    argv = ["--my-setting", "x1", "MY_SETTING=x2", "-p", "x3", "--tok", "hf-value-123", "--db", ENV["DATABASE_URL"]]
    assert redactor.argv(argv) == [
        "--my-setting",
        REDACTED,
        f"MY_SETTING={REDACTED}",
        "-p",
        REDACTED,
        "--tok",
        REDACTED,
        "--db",
        f"postgres://{REDACTED}@db.internal:5432/train",
    ]
    assert redactor.env({"MY_SETTING": "x4"}) == {"MY_SETTING": REDACTED}
    assert redactor.names == {"MY_SETTING", "P"}


def test_redaction_is_idempotent():
    redactor = Redactor(env=ENV)
    argv = ["python", "t.py", *[a for case, _ in ARGV_CASES for a in case]]
    once = redactor.argv(argv)
    assert redactor.argv(once) == once
    assert redactor.env(redactor.env(ENV)) == redactor.env(ENV)


def test_text_leaves_paths_alone_but_not_credentials_in_them():
    r = Redactor()
    assert r.text(f"/data/cache/{HEX}/shard-00001.tar") == f"/data/cache/{HEX}/shard-00001.tar"
    assert r.text("s3://bucket/train/img_0001.jpg") == "s3://bucket/train/img_0001.jpg"
    assert r.text("rgw:https://u:pw789@h:8000/b") == f"rgw:https://{REDACTED}@h:8000/b"


def test_secret_names_and_random_values():
    for name in (
        "AWS_SECRET_ACCESS_KEY",
        "apiKey",
        "X-Amz-Signature",
        "sig",
        "GITHUB_PAT",
        "AUTHORIZATION",
        "PGPASSFILE",
    ):
        assert secret_name(name), name
    for name in ("PATH", "PWD", "GIT_AUTHOR_NAME", "KEYBOARD", "PATIENCE", "AUTHOR", "no-auth"):
        assert not secret_name(name), name
    assert looks_random(AWS_SECRET) and looks_random(HEX)
    assert not looks_random("ImageNet2012/train/n01440764_10026") and not looks_random("0" * 40)


def test_replay_targets_and_results_never_carry_a_url_password():
    target = parse_target("rgw:https://user:pw789@127.0.0.1:8000/train")
    assert "pw789" not in target.text and target.endpoint == "https://user:pw789@127.0.0.1:8000"
    result = ReplayResult("s3:https://user:pw789@h/b?sig=abc", 1, 0, 0, 1.0, 1.0, 0.0, 0.0, 0)
    assert "pw789" not in json.dumps(result.to_dict()) and "abc" not in result.to_dict()["target"]
