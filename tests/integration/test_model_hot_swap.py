"""The model registry on moto (S3ModelStore) and Decide hot-swapping models in a warm execution environment.

Decide reads the active pointer at most every MODEL_POINTER_CHECK_SECONDS (5 s here, the lowest allowed),
so the hot-swap test waits for two check intervals.
"""

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
import numpy as np
import onnx
import pytest
from adserve.core.errors import (
    InvalidModelPointerError,
    ModelLoadError,
    ModelNotFoundError,
    ModelVersionConflictError,
    PointerChangedError,
)
from adserve.dal.model_store import S3ModelStore
from adserve.dal.s3_rest import S3RestClient
from adserve.decisions.policy import EpsilonGreedy, SquareCB, relative_uncertainty
from adserve.models.features import FeatureEncoder
from adserve.models.heard_ads import HeardAds, ad_id_column
from adserve.models.registry import ACTIVE_POINTER_KEY, UNREADABLE_POINTER, ActivePointer, model_key
from adserve.outcomes.decision_records import CompactCandidates, DecisionRecord, LoggedPolicy
from adserve.training.factorization_machine import TrainingConfig
from adserve.training.retraining import RetrainRequest, RetrainResult, retrain
from adserve.training.simulation import World
from adserve.training.trainer import TrainerConfig

from devstack.fakes import InMemoryLogStore
from devstack.simulated_logs import START, TrafficConfig, simulate_traffic
from tests.support.builders import campaign
from tests.support.stored_campaigns import stored_campaigns

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPO / "layers" / "model" / "bootstrap"
DECISION_EVENT = REPO / "events" / "decide_post_decision.json"
CHECK_SECONDS = 5.0


def relabelled_model(tmp_path: Path, version: str, model_bytes: bytes | None = None) -> Path:
    """A copy of the bootstrap model under a new version label, its manifest's sha256 recomputed."""
    folder = tmp_path / version
    shutil.copytree(BOOTSTRAP, folder)
    if model_bytes is not None:
        (folder / "model.onnx").write_bytes(model_bytes)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(version=version, sha256=hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest())
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def pointer_to(champion: str) -> ActivePointer:
    return ActivePointer.model_validate(
        {"champion": champion, "updated_at": "2026-01-01T00:00:00Z", "updated_by": "test"}
    )


@pytest.fixture
def s3(local_stack: Any) -> Any:
    return boto3.client("s3", endpoint_url=local_stack.endpoint_url)


@pytest.fixture
def bucket(local_stack: Any) -> str:
    name: str = local_stack.physical_name("ModelsBucket")
    return name


@pytest.fixture
def store(s3: Any, bucket: str) -> Iterator[S3ModelStore]:
    """The registry on the stack's ModelsBucket; the pointer is removed afterwards for the other tests."""
    yield S3ModelStore(s3, bucket)
    s3.delete_object(Bucket=bucket, Key=ACTIVE_POINTER_KEY)


@pytest.fixture
def fast_pointer_checks(local_stack: Any, store: S3ModelStore) -> Iterator[None]:
    """Decide in a fresh execution environment that checks the pointer every 5 s; restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_POINTER_CHECK_SECONDS", str(int(CHECK_SECONDS)))
        local_stack.reset_function("DecideFunction")
        yield
    local_stack.reset_function("DecideFunction")


def served_version(local_stack: Any) -> str:
    response = local_stack.invoke("DecideFunction", json.loads(DECISION_EVENT.read_text()))
    assert response["statusCode"] == 200, response
    version: str = json.loads(response["body"])["model_version"]
    return version


def wait_for_next_check(since: float) -> None:
    time.sleep(max(0.0, since + CHECK_SECONDS + 0.05 - time.monotonic()))


@pytest.mark.usefixtures("fast_pointer_checks")
def test_decide_hot_swaps_a_promoted_model_and_refuses_a_corrupt_one(  # noqa: PLR0917 - pytest fixtures
    local_stack: Any,
    store: S3ModelStore,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a warm Decide serving the bootstrap model (no pointer yet)
    bootstrap_version = json.loads((BOOTSTRAP / "manifest.json").read_text())["version"]
    assert served_version(local_stack) == bootstrap_version
    checked_at = time.monotonic()  # the pointer was read during that decision, so no later than now

    # When a new model is published and promoted
    good = unique("hot-swap")
    store.publish(relabelled_model(tmp_path, good))
    store.write_pointer(pointer_to(good), replacing=store.read_pointer())
    # Then decisions switch to it at the next pointer check, without a new execution environment
    assert served_version(local_stack) == bootstrap_version
    wait_for_next_check(checked_at)
    assert served_version(local_stack) == good
    checked_at = time.monotonic()

    # When a corrupt model (its manifest matches its bytes, but they are not a graph) is put and promoted
    corrupt = unique("corrupt")
    folder = relabelled_model(tmp_path, corrupt, model_bytes=b"\x08\x07not an onnx graph")
    for name in ("model.onnx", "manifest.json"):
        s3.put_object(Bucket=bucket, Key=model_key(corrupt, name), Body=(folder / name).read_bytes())
    store.write_pointer(pointer_to(corrupt), replacing=store.read_pointer())
    capfd.readouterr()
    caplog.clear()
    wait_for_next_check(checked_at)
    # Then it is refused at load, the previous model keeps serving, and the failure is counted and logged
    assert served_version(local_stack) == good
    output = capfd.readouterr().out
    assert '"ModelLoadFailures"' in output
    [failure] = [record for record in caplog.records if record.msg == "model load failed"]
    assert getattr(failure, "model_version", None) == corrupt
    assert "onnxruntime cannot load" in getattr(failure, "reason", "")


def test_publish_verifies_the_model_and_never_overwrites_a_version(
    store: S3ModelStore, s3: Any, bucket: str, tmp_path: Path
) -> None:
    version = unique("publish")
    folder = relabelled_model(tmp_path, version)
    assert store.publish(folder) == version
    assert store.publish(folder) == version  # the same bytes again: a no-op
    assert version in store.versions()

    # the same model with another manifest (a second run over the same logs in the same minute): a no-op that
    # keeps the first manifest
    first = (folder / "manifest.json").read_bytes()
    manifest = json.loads(first)
    (folder / "manifest.json").write_text(json.dumps({**manifest, "fit": {"training_seconds": 9.99}}))
    assert store.publish(folder) == version
    assert s3.get_object(Bucket=bucket, Key=model_key(version, "manifest.json"))["Body"].read() == first

    # another model under a published version: a conflict
    other = onnx.load_model_from_string((BOOTSTRAP / "model.onnx").read_bytes())
    other.doc_string = "another model"
    with pytest.raises(ModelVersionConflictError):
        store.publish(relabelled_model(tmp_path / "other", version, model_bytes=other.SerializeToString()))

    broken = relabelled_model(tmp_path, unique("broken"))
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "sha256": "0" * 64}))
    with pytest.raises(ModelLoadError, match="sha256"):
        store.publish(broken)
    assert broken.name not in store.versions()


def test_download_writes_the_files_of_a_version_and_nothing_else(store: S3ModelStore, tmp_path: Path) -> None:
    version = unique("download")
    store.publish(relabelled_model(tmp_path / "source", version))
    folder = store.download(version, tmp_path / "target")
    assert folder == tmp_path / "target" / version
    assert sorted(path.name for path in folder.iterdir()) == ["manifest.json", "model.onnx"]
    assert (folder / "model.onnx").read_bytes() == (BOOTSTRAP / "model.onnx").read_bytes()
    with pytest.raises(ModelNotFoundError):
        store.download(unique("never-published"), tmp_path / "target")
    with pytest.raises(ModelNotFoundError):
        store.download("../escape", tmp_path / "target")
    # and its manifest reads alone (a champion whose model file is gone still says what it predicted)
    assert store.manifest_bytes(version) == (folder / "manifest.json").read_bytes()
    with pytest.raises(ModelNotFoundError):
        store.manifest_bytes(unique("never-published"))


def test_the_pointer_round_trips_and_a_malformed_one_is_a_clear_error(
    store: S3ModelStore, s3: Any, bucket: str
) -> None:
    s3.delete_object(Bucket=bucket, Key=ACTIVE_POINTER_KEY)
    assert store.read_pointer() is None
    pointer = ActivePointer.model_validate(
        {"champion": "a-1", "challenger": "b-1", "challenger_share": 0.2, "updated_at": "2026-01-01T00:00:00Z"}
    )
    store.write_pointer(pointer, replacing=store.read_pointer())
    assert store.read_pointer() == pointer
    s3.put_object(Bucket=bucket, Key=ACTIVE_POINTER_KEY, Body=b'{"champion": "a-1", "challenger_share": 0.5}')
    with pytest.raises(InvalidModelPointerError, match=r"challenger_share needs a challenger|updated_at"):
        store.read_pointer()
    s3.put_object(Bucket=bucket, Key=ACTIVE_POINTER_KEY, Body=b"not json")
    with pytest.raises(InvalidModelPointerError):
        store.read_pointer()
    # A write replaces the malformed one only when told it is replacing one (the rollback over it)
    with pytest.raises(PointerChangedError, match="an unreadable pointer"):
        store.write_pointer(pointer, replacing=None)
    store.write_pointer(pointer, replacing=UNREADABLE_POINTER)
    assert store.read_pointer() == pointer
    with pytest.raises(PointerChangedError, match="champion a-1"):
        store.write_pointer(pointer, replacing=UNREADABLE_POINTER)


def test_a_pointer_write_replaces_only_the_pointer_it_was_given(store: S3ModelStore) -> None:
    first, second, third = pointer_to("first-1"), pointer_to("second-1"), pointer_to("third-1")
    store.write_pointer(first, replacing=None)
    with pytest.raises(PointerChangedError, match="champion first-1"):
        store.write_pointer(second, replacing=None)
    store.write_pointer(second, replacing=first)
    with pytest.raises(PointerChangedError, match="nothing was written"):
        store.write_pointer(third, replacing=first)
    assert store.read_pointer() == second


class WriterAfterEachRead:
    """The bucket's client, with another writer who replaces the pointer as soon as a GET of it has answered:
    the race between a write's compare and its PUT, made certain."""

    def __init__(self, client: Any, bucket: str, theirs: ActivePointer) -> None:
        self._client, self._bucket, self._theirs = client, bucket, theirs

    def get_object(self, **params: Any) -> Any:
        answer = self._client.get_object(**params)
        body = self._theirs.model_dump_json().encode()
        self._client.put_object(Bucket=self._bucket, Key=ACTIVE_POINTER_KEY, Body=body)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_pointer_written_between_the_compare_and_the_put_is_not_overwritten(
    store: S3ModelStore, s3: Any, bucket: str
) -> None:
    ours, theirs = pointer_to("ours-1"), pointer_to("theirs-1")
    store.write_pointer(pointer_to("before-1"), replacing=None)
    racing = S3ModelStore(cast("S3RestClient", WriterAfterEachRead(s3, bucket, theirs)), bucket)
    with pytest.raises(PointerChangedError, match="another writer"):
        racing.write_pointer(ours, replacing=pointer_to("before-1"))
    assert store.read_pointer() == theirs


class EveryPutSentTwice:
    """The bucket's client, whose every PUT lands and is then sent again, as the client's retry after a lost
    answer is: the retry's If-Match names the ETag the first attempt replaced."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_object(self, **params: Any) -> Any:
        self._client.put_object(**params)
        return self._client.put_object(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_pointer_write_retried_after_it_landed_is_the_writes_own(store: S3ModelStore, s3: Any, bucket: str) -> None:
    store.write_pointer(pointer_to("before-1"), replacing=None)
    retried = S3ModelStore(cast("S3RestClient", EveryPutSentTwice(s3)), bucket)
    retried.write_pointer(pointer_to("after-1"), replacing=pointer_to("before-1"))
    assert store.read_pointer() == pointer_to("after-1")


def exploring(local_stack: Any, **variables: str) -> Iterator[None]:
    """Decide (fresh environment, 5 s pointer checks) with these exploration variables and three campaigns to
    choose from; restored afterwards."""
    three = [
        campaign(campaign_id=f"gamma-{number}", advertiser_id=f"adv-gamma-{number}", value_cpm=value_cpm)
        for number, value_cpm in enumerate((5.0, 12.0, 40.0))
    ]
    with stored_campaigns(local_stack, three), pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_POINTER_CHECK_SECONDS", str(int(CHECK_SECONDS)))
        for name, value in variables.items():
            patch.setenv(name, value)
        local_stack.reset_function("DecideFunction")
        yield
    local_stack.reset_function("DecideFunction")


@pytest.fixture
def growing_gamma(local_stack: Any, store: S3ModelStore) -> Iterator[None]:
    """EXPLORATION_GAMMA_SCALE=2."""
    yield from exploring(local_stack, EXPLORATION_GAMMA_SCALE="2")


@pytest.fixture
def optimistic(local_stack: Any, store: S3ModelStore) -> Iterator[None]:
    """EXPLORATION_GAMMA_SCALE=2 and EXPLORATION_OPTIMISM=1."""
    yield from exploring(local_stack, EXPLORATION_GAMMA_SCALE="2", EXPLORATION_OPTIMISM="1")


def decided(local_stack: Any) -> DecisionRecord:
    """One decision (the sample request: full consent, three ads) and the record Decide sent for it."""
    body = json.loads(local_stack.invoke("DecideFunction", json.loads(DECISION_EVENT.read_text()))["body"])
    sqs = boto3.client("sqs", endpoint_url=local_stack.endpoint_url)
    queue_url = local_stack.env["OUTCOMES_QUEUE_URL"]
    for _ in range(20):
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            if json.loads(message["Body"]).get("kind") != "decision":
                continue  # outcome events of other tests sharing this worker's queue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            record = DecisionRecord.model_validate_json(message["Body"])
            if record.decision_id == body["decision_id"]:
                return record
    raise AssertionError(f"no record of decision {body['decision_id']} on the queue")


def first_slot_probabilities(
    record: DecisionRecord, gamma: float, optimism: float = 0.0, heard: HeardAds | None = None
) -> dict[str, float]:
    """SquareCB's distribution at ``gamma`` (and ``optimism``, by the ``heard`` counts) over the record's
    candidates, all available for the first slot."""
    assert isinstance(record.candidates, CompactCandidates)
    scores = np.array(record.candidates.score)
    values = scores * np.array(record.candidates.value_cpm)
    uncertainty = None
    if heard is not None:
        encoder = FeatureEncoder()
        column = ad_id_column(encoder.spec, in_ad_rows=True)
        ad_ids = np.array([encoder.encode_ad({"ad_id": ad_id})[column] for ad_id in record.candidates.ad_id])
        uncertainty = relative_uncertainty(scores, heard.of(ad_ids))
    probabilities = SquareCB(gamma, optimism).slot_probabilities(values, np.ones(len(values), dtype=bool), uncertainty)
    return dict(zip(record.candidates.ad_id, probabilities.tolist(), strict=True))


@pytest.mark.usefixtures("growing_gamma")
def test_with_a_gamma_scale_each_model_serves_the_gamma_its_manifest_gives_and_logs_it(
    local_stack: Any, store: S3ModelStore, tmp_path: Path
) -> None:
    # Given Decide serving the bootstrap model (no pointer): it learned from none of this deployment's decisions
    bootstrap = decided(local_stack)
    checked_at = time.monotonic()
    assert bootstrap.model_version == json.loads((BOOTSTRAP / "manifest.json").read_text())["version"]
    # Then it explores uniformly (gamma 0), and its record says so with exact propensities
    assert bootstrap.policy == LoggedPolicy(name="squarecb", gamma=0.0)
    [first] = [choice for choice in bootstrap.chosen if choice.rank == 1]
    assert first.propensity == pytest.approx(first_slot_probabilities(bootstrap, 0.0)[first.ad_id])
    assert first.propensity == pytest.approx(1 / len(first_slot_probabilities(bootstrap, 0.0)))

    # When a model whose manifest says it learned from 2,500 decisions is promoted
    version = unique("gamma")
    folder = relabelled_model(tmp_path, version)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"logged_decisions": 2_500}))
    store.publish(folder)
    store.write_pointer(pointer_to(version), replacing=store.read_pointer())
    wait_for_next_check(checked_at)
    record = decided(local_stack)
    # Then it serves with gamma 2 x sqrt(2,500) = 100 (below the configured 200), logged with the decision
    assert record.model_version == version
    assert record.policy == LoggedPolicy(name="squarecb", gamma=100.0)
    # And the logged propensity is SquareCB's at that gamma over the logged candidates, not at the configured 200
    [first] = [choice for choice in record.chosen if choice.rank == 1]
    assert first.propensity == pytest.approx(first_slot_probabilities(record, 100.0)[first.ad_id], rel=1e-9)
    assert first.propensity != pytest.approx(first_slot_probabilities(record, 200.0)[first.ad_id], rel=1e-6)


@pytest.mark.usefixtures("optimistic")
def test_with_optimism_a_model_that_counted_its_ads_explores_by_them_and_logs_it(
    local_stack: Any, store: S3ModelStore, tmp_path: Path
) -> None:
    # Given a model of 2,500 decisions that heard the cheapest campaign's ad 50 times and the dearest's 5,000
    encoder = FeatureEncoder()
    column = ad_id_column(encoder.spec, in_ad_rows=True)
    index = {
        n: int(encoder.encode_ad({"ad_id": campaign(campaign_id=f"gamma-{n}").creatives[0].ad_id})[column])
        for n in (0, 2)
    }
    heard = HeardAds.count(np.repeat([index[0], index[2]], [50, 5_000]))
    version = unique("optimistic")
    folder = relabelled_model(tmp_path, version)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(
        json.dumps(manifest | {"logged_decisions": 2_500, "heard_ads": heard.to_manifest()})
    )
    checked_at = time.monotonic()
    store.publish(folder)
    # When it is promoted and serves
    store.write_pointer(pointer_to(version), replacing=store.read_pointer())
    wait_for_next_check(checked_at)
    record = decided(local_stack)
    # Then it serves at gamma 100 with the optimism, logged with the decision
    assert record.model_version == version
    assert record.policy == LoggedPolicy(name="squarecb", gamma=100.0, optimism=1.0)
    # And the logged propensity is the optimistic distribution by its counts, not plain SquareCB's
    [first] = [choice for choice in record.chosen if choice.rank == 1]
    exact = first_slot_probabilities(record, 100.0, 1.0, heard)
    assert first.propensity == pytest.approx(exact[first.ad_id], rel=1e-9)
    assert exact != pytest.approx(first_slot_probabilities(record, 100.0), rel=1e-6)


def test_a_second_retrain_over_the_same_logs_in_the_same_minute_finds_its_model_published(
    store: S3ModelStore, tmp_path: Path
) -> None:
    # Given logs, and a retrain over them (a scheduled run)
    logs = InMemoryLogStore()
    traffic = TrafficConfig(
        decisions=4000, span=timedelta(hours=48), candidates=5, max_ads=2, exploration=EpsilonGreedy(0.5), seed=7
    )
    simulate_traffic(logs, World(seed=11), traffic)
    end = START + traffic.span
    quick = TrainerConfig(fit=TrainingConfig(max_epochs=3, patience=1))

    def run(as_of: datetime, work: str) -> RetrainResult:
        request = RetrainRequest(start=START, end=end, as_of=as_of, trainer=quick, min_rows=10, min_positives=1)
        return retrain(logs, store, request, work_dir=tmp_path / work)

    first = run(end + timedelta(hours=24), "first")
    # When another runs over them 30 s later, in the same minute (a manual run), Then it trains the same model,
    # finds it published and goes on to judge it, instead of failing on its manifest's other training time
    second = run(end + timedelta(hours=24, seconds=30), "second")
    assert first.version is not None
    assert second.version == first.version
    assert second.status in {"registered", "promoted"}
