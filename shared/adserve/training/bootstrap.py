"""Build the bootstrap CTR model from the simulated world, so serving has a model before any real logs exist.

    python -m adserve.training.bootstrap --out layers/model/bootstrap

Writes ``model.onnx`` and ``manifest.json``. Everything is seeded: running it twice gives identical files,
so the committed sha256 can be reproduced by anyone.
"""

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from adserve.models.features import DEFAULT_SPEC, FeatureEncoder, candidate_features
from adserve.training.factorization_machine import FactorizationMachine, TrainingConfig
from adserve.training.metrics import log_loss, roc_auc
from adserve.training.model_files import write_model_dir
from adserve.training.onnx_export import export_onnx
from adserve.training.simulation import Impressions, World, bayes_auc

SEED = 20240601


def build_bootstrap(
    out_dir: Path, seed: int = SEED, training_rows: int = 1_000_000, holdout_rows: int = 200_000
) -> dict[str, Any]:
    """Train on the simulated world, write the model and its manifest to ``out_dir``, return the manifest."""
    world = World(seed=seed)
    rng = np.random.default_rng(seed)
    encoder = FeatureEncoder(DEFAULT_SPEC)
    train, validation, holdout = (
        world.sample_impressions(n, rng) for n in (training_rows, holdout_rows // 2, holdout_rows)
    )

    def encode(impressions: Impressions) -> np.ndarray:
        """The world's impressions count nothing: their candidate fields are the unknown value."""
        unknown = [candidate_features(None)] * len(impressions.ads)
        return encoder.encode_rows(impressions.listeners, impressions.ads, unknown)

    model = FactorizationMachine(DEFAULT_SPEC.hash_size, num_factors=8, seed=seed)
    model.fit(encode(train), train.clicks, encode(validation), validation.clicks, TrainingConfig(seed=seed))
    holdout_probs = model.predict(encode(holdout))

    details = {
        "holdout_auc": round(roc_auc(holdout.clicks, holdout_probs), 6),
        "bayes_auc": round(bayes_auc(holdout.true_probs, holdout.clicks), 6),
        "holdout_log_loss": round(log_loss(holdout.clicks, holdout_probs), 6),
        "training_rows": training_rows,
        "logged_decisions": 0,  # a simulated world's rows, none of the deployment's: its growing gamma is 0
        "seed": seed,
        "parent_version": None,
    }
    model_bytes = export_onnx(model, DEFAULT_SPEC.num_fields)
    return write_model_dir(out_dir, model_bytes, DEFAULT_SPEC, "bootstrap-{sha12}", details)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for model.onnx and manifest.json")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--rows", type=int, default=1_000_000, help="training impressions")
    args = parser.parse_args()
    started = time.perf_counter()
    manifest = build_bootstrap(args.out, seed=args.seed, training_rows=args.rows)
    size = (args.out / "model.onnx").stat().st_size
    print(  # noqa: T201 - CLI entry point
        f"{manifest['version']}: holdout AUC {manifest['holdout_auc']:.4f} (bayes {manifest['bayes_auc']:.4f}), "
        f"log loss {manifest['holdout_log_loss']:.4f}, {size / 1e6:.2f} MB, {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
