"""Figure 6: model hot swap on moto: the swap itself, and Decide's latency while swaps happen.

Models are the bootstrap model (``layers/model/bootstrap``, ~1 MB) relabelled under new versions and
published with ``S3ModelStore`` to the stack's ModelsBucket on moto (a Python server on the same cores, so
the download figure is moto's, not S3's).

- *swap*: what the one request that finds a new pointer pays, split into its steps: the pointer read,
  the download of model.onnx + manifest.json to a scratch folder, ``CtrModel.load`` (sha256, feature
  spec, onnxruntime session), and the complete ``ModelProvider`` refresh (all of it plus the swap of one
  reference), each timed over several fresh versions.
- *decide during swaps*: ``DecisionService.decide`` at 50 candidates with in-memory caps and queue (as
  figure 1a) and the real ``ModelProvider`` over moto as its scorer. A fake monotonic clock makes the
  pointer check interval lapse every ``CHECK_EVERY`` decisions, and every other check finds a new
  pointer: so the run holds decisions that did nothing, ones that re-read an unchanged pointer, and ones
  that downloaded, verified and swapped a model. Reported for all decisions and per kind.
"""

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adserve.dal.aws_clients import s3_client
from adserve.dal.botocore_session import botocore_client
from adserve.dal.model_store import S3ModelStore
from adserve.decisions.api import DecisionRequest
from adserve.models.ctr_model import CtrModel
from adserve.models.features import FeatureEncoder
from adserve.models.registry import ActivePointer
from adserve.models.serving import ModelProvider

from bench import catalogs
from bench.decide_latency import BASE_URL, MAX_ADS, MODEL_DIR, fake_service, quiet_stdout
from bench.stats import summarize
from devstack.stack import LocalStack

CANDIDATES = 50
CHECK_SECONDS = 60.0
CHECK_EVERY = 100
"""Decisions per pointer check interval (the fake clock moves by CHECK_SECONDS every CHECK_EVERY decisions)."""


def _publish_versions(store: S3ModelStore, count: int, scratch: Path) -> list[str]:
    """``count`` new versions of the bootstrap model, unique to this run."""
    run = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:8]
    versions = []
    for index in range(count):
        version = f"bench-{run}-{index}"
        folder = scratch / "publish" / version
        shutil.copytree(MODEL_DIR, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
        versions.append(store.publish(folder))
    return versions


def _pointer(version: str) -> ActivePointer:
    return ActivePointer(champion=version, updated_at=datetime.now(UTC), updated_by="bench")


def _timed(operation: Callable[[], object]) -> int:
    started = time.perf_counter_ns()
    operation()
    return time.perf_counter_ns() - started


def _provider(store: S3ModelStore, encoder: FeatureEncoder, cache_dir: Path, clock: list[float]) -> ModelProvider:
    """Decide's model provider on a hand-driven clock (`clock[0]`), so the bench decides when checks happen."""
    return ModelProvider(
        store=store,
        bootstrap=lambda: CtrModel.load(MODEL_DIR, encoder.spec),
        spec=encoder.spec,
        cache_dir=cache_dir,
        check_seconds=CHECK_SECONDS,
        monotonic=lambda: clock[0],
    )


def _swap_steps(store: S3ModelStore, versions: list[str], encoder: FeatureEncoder, scratch: Path) -> dict[str, Any]:
    """Each step of a swap on fresh versions, and the whole provider refresh that finds a new pointer."""
    reads, downloads, loads, refreshes = [], [], [], []
    clock = [0.0]
    provider = _provider(store, encoder, scratch / "provider", clock)
    provider("listener")
    for version in versions:
        reads.append(_timed(store.read_pointer))
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            started = time.perf_counter_ns()
            downloaded = store.download(version, Path(folder))
            downloads.append(time.perf_counter_ns() - started)
            loads.append(_timed(lambda: CtrModel.load(downloaded, encoder.spec)))  # noqa: B023 - called at once
        store.write_pointer(_pointer(version), replacing=store.read_pointer())
        clock[0] += CHECK_SECONDS
        refreshes.append(_timed(lambda: provider("listener")))
        if provider("listener").version != version:
            raise RuntimeError(f"the provider did not swap to {version}")
    return {
        "model_bytes": (MODEL_DIR / "model.onnx").stat().st_size,
        "pointer_read": summarize(reads).to_dict(),
        "download": summarize(downloads).to_dict(),
        "verify_and_load": summarize(loads).to_dict(),
        "provider_refresh_with_swap": summarize(refreshes).to_dict(),
    }


def _decide_during_swaps(store: S3ModelStore, versions: list[str], decisions: int, scratch: Path) -> dict[str, Any]:
    encoder = FeatureEncoder()
    clock = [0.0]
    provider = _provider(store, encoder, scratch / "decide", clock)
    store.write_pointer(_pointer(versions[0]), replacing=store.read_pointer())
    wiring = fake_service(CANDIDATES, CtrModel.load(MODEL_DIR, encoder.spec), encoder)
    service = replace(wiring.service, scorer=provider, cached=(provider.reloadable(),))  # as Decide's wiring lists it
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    samples: dict[str, list[int]] = {"all": [], "no_check": [], "unchanged_pointer": [], "swap": []}
    served: set[str] = set()
    next_version = 1
    for index in range(decisions):
        clock[0] = (index // CHECK_EVERY) * CHECK_SECONDS  # the interval lapses exactly every CHECK_EVERY decisions
        kind = "no_check"
        if index and index % CHECK_EVERY == 0:
            kind = "unchanged_pointer"
            if (index // CHECK_EVERY) % 2 == 0:  # every other check finds a new champion
                store.write_pointer(_pointer(versions[next_version % len(versions)]), replacing=store.read_pointer())
                next_version += 1
                kind = "swap"
        started = time.perf_counter_ns()
        response = service.decide(request, BASE_URL)
        elapsed = time.perf_counter_ns() - started
        wiring.after_decision()
        if index >= CHECK_EVERY // 2:  # the first ones warm up (and the first reads the pointer cold)
            samples["all"].append(elapsed)
            samples[kind].append(elapsed)
        served.add(response.model_version)
    return {
        "candidates": CANDIDATES,
        "decisions": decisions,
        "checks_every_decisions": CHECK_EVERY,
        "versions_served": len(served),
        **{kind: summarize(values).to_dict() for kind, values in samples.items() if values},
    }


def run(stack: LocalStack, quick: bool = False) -> dict[str, Any]:
    store = S3ModelStore(s3_client(), stack.physical_name("ModelsBucket"))
    encoder = FeatureEncoder()
    swaps = 5 if quick else 10
    decisions = 1000 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as folder, quiet_stdout():
        scratch = Path(folder)
        versions = _publish_versions(store, max(swaps, 3), scratch)
        try:
            steps = _swap_steps(store, versions[:swaps], encoder, scratch)
            during = _decide_during_swaps(store, versions[:3], decisions, scratch)
        finally:
            stack_client = botocore_client("s3")
            stack_client.delete_object(Bucket=stack.physical_name("ModelsBucket"), Key="models/active.json")
    return {"swap": steps, "decide_during_swaps": during}
