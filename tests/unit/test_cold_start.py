"""What issue 13 removed from Decide's cold start, and SnapStart's runtime hooks, without AWS."""

import gc
import importlib.util
import json
import random
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from adserve.campaigns.model import Campaign
from adserve.core.collector import collector_paused
from adserve.core.observability import MetricName, metrics, tracing_enabled
from adserve.core.refreshing import FIRST_LOAD_RETRY_SECONDS, RefreshingValue
from adserve.decisions.catalog import CampaignCatalog
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder
from adserve.models.registry import ActivePointer
from adserve.models.serving import ModelProvider
from adserve.outcomes.key_cache import SigningKeyCache
from adserve.outcomes.tokens import TokenSigner
from adserve.wiring import snapstart
from adserve.wiring.decide import after_restore, first_request_reads
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.metrics import MetricUnit

from devstack.fakes import InMemoryModelStore, InMemoryPacingStore
from tests.support.builders import campaign
from tests.unit.test_model_serving import bootstrap_model

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"LAMBDA_TASK_ROOT": "/var/task"},
        {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"},
        {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "0"},
        {"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"},
        {"POWERTOOLS_TRACE_DISABLED": "false"},
    ],
)
def test_tracing_is_on_exactly_where_powertools_would_trace(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert tracing_enabled(environ) is not bool(Tracer._is_tracer_disabled())


def _fresh_import(extra_env: dict[str, str]) -> dict[str, object]:
    """Import the Decide handler in a fresh interpreter and say what the tracer became."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(REPO / 'functions/decide/app.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "from adserve.core.observability import tracer\n"
        "from adserve.wiring import settings\n"
        "built = [c.__name__ for c in vars(settings).values()\n"
        "    if isinstance(c, type) and issubclass(c, settings.EnvironmentSettings) and c.__pydantic_complete__]\n"
        "import gc\n"
        "print(json.dumps({'xray_core': 'aws_xray_sdk.core' in sys.modules, 'disabled': tracer.disabled,\n"
        "    'collecting': gc.isenabled(), 'import_frozen': gc.get_freeze_count() > 0,\n"
        "    'provider': type(tracer.provider).__name__,\n"
        "    'patched_httplib': 'aws_xray_sdk.ext.httplib.patch' in sys.modules, 'settings_built': built}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", **extra_env}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_outside_lambda_the_xray_sdk_is_not_even_imported() -> None:
    assert _fresh_import({}) == {
        "xray_core": False,
        "disabled": True,
        "provider": "UntracedProvider",
        "patched_httplib": False,
        "settings_built": [],  # each function's settings schema is built when it first reads them
        "collecting": True,  # the collector, paused while the handler imports, is on again
        "import_frozen": True,  # and what the import allocated is out of its reach
    }


def test_in_lambda_xray_traces_the_aws_calls_only() -> None:
    assert _fresh_import({"LAMBDA_TASK_ROOT": "/var/task"}) == {
        "xray_core": True,
        "disabled": False,
        "provider": "AsyncAWSXRayRecorder",
        "patched_httplib": False,
        "settings_built": [],
        "collecting": True,
        "import_frozen": True,
    }


@pytest.mark.parametrize("collecting_before", [True, False])
def test_the_collector_is_paused_in_the_block_then_freezes_what_it_kept_and_resumes_as_it_was(
    collecting_before: bool,
) -> None:
    (gc.enable if collecting_before else gc.disable)()
    kept: list[list[int]] = []
    try:
        frozen_before = gc.get_freeze_count()
        with collector_paused():
            assert not gc.isenabled()
            kept.extend([n] for n in range(1000))  # lists: always tracked by the collector
        assert gc.isenabled() is collecting_before
        assert gc.get_freeze_count() >= frozen_before + len(kept)
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("handler", "builder", "settings", "built"),
    [
        ("functions/decide/app.py", "decision_service", "DecideSettings", "service"),
        ("functions/record/app.py", "outcome_recorder", "RecordSettings", "recorder"),
    ],
)
def test_what_a_handler_keeps_is_built_with_the_collector_paused(
    monkeypatch: pytest.MonkeyPatch, handler: str, builder: str, settings: str, built: str
) -> None:
    spec = importlib.util.spec_from_file_location(f"{built}_app_under_test", REPO / handler)
    assert spec is not None
    assert spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    seen: list[bool] = []

    def build(_: object) -> str:
        seen.append(gc.isenabled())
        return built

    monkeypatch.setattr(app, builder, build)
    monkeypatch.setattr(getattr(app, settings), "from_env", staticmethod(lambda: None))
    assert getattr(app, built)() == built
    assert seen == [False]
    assert gc.isenabled()


def test_the_first_request_reads_run_at_once_and_a_failing_one_is_left_to_the_request() -> None:
    # Each load waits until all three are running: sequential loads would time out at the barrier
    together = threading.Barrier(3, timeout=30)
    done: list[str] = []

    def load(name: str) -> None:
        together.wait()
        done.append(name)

    def failing() -> None:
        together.wait()
        raise ConnectionError("secret unreachable")

    with first_request_reads() as start:
        start(lambda: load("catalog"))
        start(lambda: load("model"))
        start(failing)
    assert sorted(done) == ["catalog", "model"]


def test_an_expired_value_reloads_and_counts_as_infinitely_old_until_a_load_succeeds() -> None:
    now = [0.0]
    answers: list[int | Exception] = [1, ConnectionError("down"), 3]

    def load() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    value = RefreshingValue(load, 60.0, name="test", monotonic=lambda: now[0])
    assert value.get() == 1
    now[0] = 10.0
    value.expire()
    assert value.get() == 1  # the reload failed: the old value serves...
    assert value.age_seconds() == float("inf")  # ...but is not passed off as 10 s old
    now[0] = 10.0 + FIRST_LOAD_RETRY_SECONDS / 2
    assert value.get() == 1  # and the failed attempt waits, not a TTL but as a failed first load does:
    assert answers == [3]
    now[0] = 10.0 + FIRST_LOAD_RETRY_SECONDS  # a value of unknown age is retried soon
    assert value.get() == 3
    assert value.age_seconds() == 0.0


class _Counted(InMemoryModelStore):
    reads = 0

    def read_pointer(self) -> ActivePointer | None:
        self.reads += 1
        return super().read_pointer()


class _Campaigns:
    scans = 0

    def list_campaigns(self) -> list[Campaign]:
        self.scans += 1
        return [campaign(campaign_id="c1")]


class _Keys:
    loads = 0

    def __call__(self) -> TokenSigner:
        self.loads += 1
        return TokenSigner(b"k" * 32)


@pytest.fixture(autouse=True)
def no_restore_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only this test's actions: other tests in the process may have built services."""
    monkeypatch.setattr(snapstart, "_ON_RESTORE", {})


def test_after_a_restore_the_rng_is_reseeded_and_every_refreshed_value_is_checked_again(tmp_path: Path) -> None:
    # Given Decide's refreshed values, all loaded a moment ago (as in a snapshot), and its rng
    store = _Counted()
    models = ModelProvider(
        store=store, bootstrap=bootstrap_model, spec=DEFAULT_SPEC, cache_dir=tmp_path, check_seconds=60.0
    )
    campaigns, key_loads = _Campaigns(), _Keys()
    catalog = CampaignCatalog(
        campaigns,
        FeatureEncoder(),
        30.0,
        max_age_seconds=300.0,
        pacing=InMemoryPacingStore(),
        pacing_max_age=timedelta(minutes=5),
    )
    keys = SigningKeyCache(key_loads)
    models.current()
    catalog.warm()
    keys.signer()
    rng = random.Random(7)
    snapshot_state, module_state = rng.getstate(), random.getstate()
    # When the after-restore hook runs (registered as Decide's wiring does)
    snapstart.on_restore(
        "decide",
        lambda: after_restore(
            rng,
            (catalog.reloadable(), models.reloadable(), keys.reloadable()),
        ),
    )
    snapstart.restored()
    # Then neither the service's rng nor the module's (the SDK clients' retry jitter) continues the snapshot's
    assert rng.getstate() != snapshot_state
    assert random.getstate() != module_state
    assert rng.random() != random.Random(7).random()
    # And the hook itself read the pointer, Scanned the catalog and reloaded the keys, though within their TTLs,
    # so the next request finds them read and reads none again
    assert (store.reads, campaigns.scans, key_loads.loads) == (2, 2, 2)
    models.current()
    catalog.warm()
    keys.signer()
    assert (store.reads, campaigns.scans, key_loads.loads) == (2, 2, 2)


def test_restore_actions_are_replaced_by_name_and_registering_outside_lambda_does_nothing() -> None:
    ran: list[str] = []
    snapstart.on_restore("test-service", lambda: ran.append("old"))
    snapstart.on_restore("test-service", lambda: ran.append("new"))
    snapstart.restored()
    assert ran.count("new") == 1
    assert "old" not in ran
    assert importlib.util.find_spec("snapshot_restore_py") is None  # it exists only in Lambda's runtime
    snapstart.register(prepare=lambda: ran.append("prepared"))
    assert "prepared" not in ran


def test_metrics_of_the_init_are_sent_once_before_the_snapshot_and_not_by_each_restored_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an init whose preparation failed to load a model (as when a version is published with a refused one)
    metrics.clear_metrics()

    def prepare() -> None:
        metrics.add_metric(MetricName.MODEL_LOAD_FAILURES, MetricUnit.Count, 1)

    # When the before-snapshot hook runs, the failure is sent there, once
    snapstart.before_snapshot(prepare)
    sent = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [line[MetricName.MODEL_LOAD_FAILURES] for line in sent] == [[1.0]]
    # And an environment restored from a snapshot that still held a metric drops it before its own actions run
    metrics.add_metric(MetricName.MODEL_LOAD_FAILURES, MetricUnit.Count, 1)
    snapstart.on_restore("test-service", lambda: metrics.add_metric(MetricName.MODEL_SWAPS, MetricUnit.Count, 1))
    snapstart.restored()
    assert set(metrics.metric_set) == {MetricName.MODEL_SWAPS}
    metrics.clear_metrics()
