"""Bring your own model on the local stack: the CLI refuses a contract breaker and stores nothing; the example
in examples/external_model trains elsewhere on the joined logs, publishes, runs as challenger, and is evaluated
in the same table as the champion."""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from adserve.cli.main import main
from adserve.training.simulation import World

from devstack.simulated_logs import TrafficConfig, simulate_traffic
from devstack.stack import LocalStack
from tests.unit.test_model_contract import manifest_for, tiny_model

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "external_model" / "train_sklearn.py"
BOOTSTRAP = ROOT / "layers" / "model" / "bootstrap"


def keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


@pytest.fixture
def buckets(local_stack: LocalStack) -> Iterator[tuple[Any, str, str]]:
    """The stack's logs and models buckets; what the test adds is removed and the pointer restored after."""
    s3 = boto3.client("s3", endpoint_url=local_stack.endpoint_url)
    logs, models = local_stack.physical_name("LogsBucket"), local_stack.physical_name("ModelsBucket")
    before = {bucket: keys(s3, bucket) for bucket in (logs, models)}
    pointer = (
        s3.get_object(Bucket=models, Key="models/active.json")["Body"].read()
        if "models/active.json" in before[models]
        else None
    )
    yield s3, logs, models
    for bucket, existing in before.items():
        for key in keys(s3, bucket) - existing:
            s3.delete_object(Bucket=bucket, Key=key)
    if pointer is not None:
        s3.put_object(Bucket=models, Key="models/active.json", Body=pointer)


def test_publish_refuses_a_contract_breaker_and_stores_nothing(
    buckets: tuple[Any, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, _, models = buckets
    logits = tiny_model(squash="Identity")  # no sigmoid: scores above 1
    (tmp_path / "model.onnx").write_bytes(logits)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest_for(logits)))
    before = keys(s3, models)

    code = main(["models", "publish", str(tmp_path / "model.onnx"), "--manifest", str(tmp_path / "manifest.json")])

    assert code == 1
    err = capsys.readouterr().err
    assert "does not meet the model contract" in err
    assert "nothing was stored" in err
    assert "[smoke-test] scoring sample index rows gives one finite probability in [0, 1] per row" in err
    assert keys(s3, models) == before


def test_a_good_external_model_is_published_and_promotable(
    buckets: tuple[Any, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, _, models = buckets
    good = tiny_model()
    (tmp_path / "model.onnx").write_bytes(good)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest_for(good)))

    assert main(["models", "publish", str(tmp_path / "model.onnx"), "--manifest", str(tmp_path / "manifest.json")]) == 0
    assert capsys.readouterr().out.strip() == "external-tiny-1"
    assert {"models/external-tiny-1/model.onnx", "models/external-tiny-1/manifest.json"} <= keys(s3, models)
    assert main(["promote", "external-tiny-1"]) == 0
    pointer = json.loads(s3.get_object(Bucket=models, Key="models/active.json")["Body"].read())
    assert pointer["champion"] == "external-tiny-1"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.slow  # about 30 s: 6,000 simulated decisions, a scikit-learn fit in a process of its own
def test_the_example_trains_elsewhere_publishes_and_is_evaluated_as_challenger(
    buckets: tuple[Any, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two days of simulated traffic in the logs bucket and the bootstrap model as champion
    s3, logs, _ = buckets
    start = datetime(2026, 10, 1, tzinfo=UTC)
    traffic = TrafficConfig(decisions=6000, start=start, span=timedelta(hours=48), keep_truth=False, seed=3)

    class Sink:
        def put_object(self, key: str, body: bytes) -> None:
            s3.put_object(Bucket=logs, Key=key, Body=body)

    simulate_traffic(Sink(), World(seed=5), traffic)
    bootstrap_version = run(
        ["models", "publish", str(BOOTSTRAP / "model.onnx"), "--manifest", str(BOOTSTRAP / "manifest.json")], capsys
    ).strip()
    run(["promote", bootstrap_version], capsys)

    # When the first 36 hours are read as joined rows and the example trains on them outside adserve
    joined = tmp_path / "joined.jsonl"
    joined.write_text(run(["logs", "--from", "2026-10-01T00", "--to", "2026-10-02T11", "--kind", "joined"], capsys))
    trained = subprocess.run(
        [sys.executable, str(EXAMPLE), str(joined), "--out", str(tmp_path / "sk-mlp")],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr
    version = trained.stdout.strip()
    assert version.startswith("sk-mlp-")

    # And it is published through the contract and promoted as challenger
    model, manifest = tmp_path / "sk-mlp" / "model.onnx", tmp_path / "sk-mlp" / "manifest.json"
    assert run(["models", "publish", str(model), "--manifest", str(manifest)], capsys).strip() == version
    pointer = json.loads(run(["promote", version, "--challenger", "--share", "0.2"], capsys))
    assert (pointer["champion"], pointer["challenger"]) == (bootstrap_version, version)

    # Then the last 12 hours, which neither model saw, rate both in one table
    table = run(
        ["models", "evaluate", "--from", "2026-10-02T12", "--to", "2026-10-02T23", "--as-of", "2026-10-05T00"], capsys
    )
    rows = {line.split()[1]: line for line in table.splitlines() if line.startswith(("champion ", "challenger "))}
    assert set(rows) == {bootstrap_version, version}, table
    assert rows[version].startswith("challenger ")
    number = r"\d\.\d{4,5}"
    for line in rows.values():
        # AUC, log loss, ECE, then IPS, SNIPS and DR with their standard errors
        assert re.search(rf"{number}\s+{number}\s+{number}(\s+{number} ±{number}){{3}}$", line), table
    assert f"DR's reward model: {bootstrap_version}" in table
