"""Figure 7: retraining throughput and memory: dataset build, training and evaluation, rows per second.

Simulated traffic (``devstack.simulated_logs``: the real serving policy, 20 candidates per decision, two ads
per break, so one example per chosen ad = 2 per decision) is written once as gzip JSON Lines under
``/tmp/adserve-bench-logs/<rows>/``, exactly as Record lays it out, and reused by later runs. Each size is
then measured in a fresh child process, so its peak RSS (``resource.getrusage``) is the retraining's own:
interpreter + imports, then after the dataset build (read, parse, dedupe, join, encode; the logs are read
from local disk, so S3's latency is not in it), then after training (Adagrad epochs with early stopping on
the time split) and the offline evaluation (holdout metrics, IPS/SNIPS/DR of new and champion policies).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.catalogs import REPO_ROOT

CACHE = Path(tempfile.gettempdir()) / "adserve-bench-logs"
SIZES = (100_000, 1_000_000)
CANDIDATES = 20
ADS_PER_DECISION = 2
SEED = 20261125


@dataclass
class DirectoryLogStore:
    """The logs bucket as a directory: keys are relative paths."""

    root: Path

    def put_object(self, key: str, body: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def list_keys(self, prefix: str) -> Iterator[str]:
        folder = self.root / prefix
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                yield str(path.relative_to(self.root))

    def read_object(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


def _traffic(rows: int) -> Any:
    from devstack.simulated_logs import TrafficConfig  # noqa: PLC0415 - only in the processes that need it

    decisions = rows // ADS_PER_DECISION
    # ~1,000 decisions an hour: partitions of realistic size whatever the total
    span = timedelta(hours=max(24, decisions // 1000))
    return TrafficConfig(
        decisions=decisions, span=span, candidates=CANDIDATES, max_ads=ADS_PER_DECISION, seed=SEED, keep_truth=False
    )


def logs_for(rows: int) -> tuple[Path, float | None]:
    """The cached logs of `rows` examples (generated when missing); the seconds generation took, if it ran."""
    folder = CACHE / str(rows)
    marker = folder / "complete"
    if marker.exists():
        return folder, None
    from adserve.training.simulation import World  # noqa: PLC0415

    from devstack.simulated_logs import simulate_traffic  # noqa: PLC0415

    started = time.perf_counter()
    simulate_traffic(DirectoryLogStore(folder), World(seed=SEED), _traffic(rows))
    marker.write_text("ok\n")
    return folder, time.perf_counter() - started


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(folder: Path, rows: int) -> dict[str, Any]:
    """In this (fresh) process: build, train, evaluate the logs in `folder`; timings and peak RSS."""
    from adserve.models.ctr_model import CtrModel  # noqa: PLC0415
    from adserve.models.features import DEFAULT_SPEC, FeatureEncoder  # noqa: PLC0415
    from adserve.models.heard_ads import ad_id_column  # noqa: PLC0415
    from adserve.training.dataset import DatasetConfig, TrainingDataset  # noqa: PLC0415
    from adserve.training.evaluation import evaluate  # noqa: PLC0415
    from adserve.training.trainer import TrainerConfig, collect, export, fit, write_model  # noqa: PLC0415

    baseline = _rss_mb()
    traffic = _traffic(rows)
    end = traffic.start + traffic.span
    config = DatasetConfig(traffic.start, end, end + timedelta(hours=24))
    dataset = TrainingDataset(DirectoryLogStore(folder), config, FeatureEncoder(DEFAULT_SPEC))
    trainer = TrainerConfig()
    started = time.perf_counter()
    data = collect(dataset, trainer)
    build_seconds = time.perf_counter() - started
    after_build = _rss_mb()
    trained = fit(data, DEFAULT_SPEC, trainer)
    epochs = len(trained.report.validation_log_loss)
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        write_model(
            Path(work), export(trained, DEFAULT_SPEC), trained=trained, spec=DEFAULT_SPEC, as_of=end, details={}
        )
        export_seconds = time.perf_counter() - started
        model = CtrModel.load(Path(work), DEFAULT_SPEC)
        champion = CtrModel.load(REPO_ROOT / "layers" / "model" / "bootstrap", DEFAULT_SPEC)
        started = time.perf_counter()
        evaluation = evaluate(
            data.holdout,
            data.holdout_slot_one,
            data.ad_rows,
            model,
            champion,
            ad_id_column=ad_id_column(DEFAULT_SPEC, in_ad_rows=True),
        )
        evaluate_seconds = time.perf_counter() - started
    examples = dataset.stats.examples
    return {
        "examples": examples,
        "decisions": dataset.stats.decisions,
        "log_objects": dataset.stats.read.objects,
        "candidates_per_decision": CANDIDATES,
        "build_seconds": round(build_seconds, 2),
        "build_rows_per_s": round(examples / build_seconds),
        "train_rows": len(data.train),
        "epochs": epochs,
        "train_seconds": round(trained.seconds, 2),
        "train_row_epochs_per_s": round(len(data.train) * epochs / trained.seconds),
        "export_seconds": round(export_seconds, 2),
        "holdout_decisions": evaluation.decisions,
        "evaluate_seconds": round(evaluate_seconds, 2),
        "evaluate_decisions_per_s": round(evaluation.decisions / evaluate_seconds) if evaluate_seconds else None,
        "holdout_auc": evaluation.new.auc,
        "rss_mb": {"baseline": round(baseline), "after_build": round(after_build), "peak": round(_rss_mb())},
    }


def run(quick: bool = False, large: bool = False) -> dict[str, Any]:
    """Each size in a child process; 1M rows only with `large` (its logs take minutes to generate once)."""
    results: dict[str, Any] = {"sizes": {}}
    for rows in SIZES:
        if rows > SIZES[0] and (quick or not large):
            results["sizes"][str(rows)] = {"skipped": "pass --retrain-1m (generating its logs takes minutes, once)"}
            continue
        folder, generated = logs_for(rows)
        child = subprocess.run(
            [sys.executable, "-m", "bench.retraining", "--measure", str(folder), "--rows", str(rows)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        figure = json.loads(child.stdout.strip().splitlines()[-1])
        figure["generation_seconds"] = None if generated is None else round(generated, 1)
        results["sizes"][str(rows)] = figure
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measure", type=Path, help="(child) measure the logs in this folder")
    parser.add_argument("--rows", type=int, default=SIZES[0])
    parser.add_argument("--large", action="store_true", help="also 1M rows")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.rows)))
        return
    print(json.dumps(run(large=args.large), indent=2))


if __name__ == "__main__":
    main()
