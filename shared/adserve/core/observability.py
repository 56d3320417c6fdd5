"""The one place that creates the logger, tracer and metrics; configured by POWERTOOLS_* variables."""

import contextlib
import functools
import os
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

TRACED_MODULES = ("botocore",)
"""What X-Ray patches when tracing is on: every AWS call; we make no other outbound calls."""


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Powertools' rule: on in Lambda, off under SAM local or Chalice local, or with POWERTOOLS_TRACE_DISABLED."""
    if environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes", "on", "y", "t"):
        return False
    return bool(environ.get("LAMBDA_TASK_ROOT")) and not (
        environ.get("AWS_SAM_LOCAL") or environ.get("AWS_CHALICE_CLI_MODE")
    )


class _Untraced(BaseSegment):
    """What a decorated function runs in while tracing is off: records nothing."""

    def close(self, *_: Any, **__: Any) -> None:
        return None

    def add_subsegment(self, *_: Any, **__: Any) -> None:
        return None

    def remove_subsegment(self, *_: Any, **__: Any) -> None:
        return None

    def put_annotation(self, *_: Any, **__: Any) -> None:
        return None

    def put_metadata(self, *_: Any, **__: Any) -> None:
        return None

    def add_exception(self, *_: Any, **__: Any) -> None:
        return None


class UntracedProvider(BaseProvider):
    """The tracer's provider while tracing is off. Powertools' default provider imports the X-Ray SDK and
    builds its sampling client even to stay disabled: about a third of Decide's import on the bench."""

    @contextlib.contextmanager
    def in_subsegment(self, *_: Any, **__: Any) -> Generator[BaseSegment, None, None]:
        yield _Untraced()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, *_: Any, **__: Any) -> AsyncGenerator[BaseSegment, None]:
        yield _Untraced()

    def put_annotation(self, *_: Any, **__: Any) -> None:
        return None

    def put_metadata(self, *_: Any, **__: Any) -> None:
        return None

    def patch(self, *_: Any, **__: Any) -> None:
        return None

    def patch_all(self) -> None:
        return None


logger = Logger()
tracer = (
    Tracer(patch_modules=TRACED_MODULES) if tracing_enabled() else Tracer(disabled=True, provider=UntracedProvider())
)
metrics = Metrics()


class MetricName(StrEnum):
    """Every metric adserve emits, in the POWERTOOLS_METRICS_NAMESPACE namespace."""

    DECISIONS = "Decisions"
    ADS_RETURNED = "AdsReturned"
    EMPTY_DECISIONS = "EmptyDecisions"
    EXPLAINED_DECISIONS = "ExplainedDecisions"
    CANDIDATES_FILTERED_BY_TARGETING = "CandidatesFilteredByTargeting"
    CANDIDATES_FILTERED_BY_CAP = "CandidatesFilteredByCap"
    CANDIDATES_FILTERED_BY_CONSENT = "CandidatesFilteredByConsent"
    PERSONALISED_DECISIONS = "PersonalisedDecisions"
    CONTEXTUAL_DECISIONS = "ContextualDecisions"
    CAP_CHECK_FAILURES = "CapCheckFailures"
    DECISION_LOG_FAILURES = "DecisionLogFailures"
    DECIDE_LATENCY = "DecideLatency"
    CATALOG_AGE_SECONDS = "CatalogAgeSeconds"
    CATALOG_STALE = "CatalogStale"
    MODEL_LOAD_FAILURES = "ModelLoadFailures"
    CAMPAIGNS_WRITTEN = "CampaignsWritten"
    UNHANDLED_ERRORS = "UnhandledErrors"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    DEGRADED_INVOCATIONS = "DegradedInvocations"
    EVENTS_ACCEPTED = "EventsAccepted"
    EVENTS_REJECTED = "EventsRejected"
    EVENTS_NOT_QUEUED = "EventsNotQueued"
    SIGNING_KEY_REFRESH_FAILURES = "SigningKeyRefreshFailures"
    PSEUDONYM_KEY_REFRESH_FAILURES = "PseudonymKeyRefreshFailures"
    RECORDS_PROCESSED = "RecordsProcessed"
    RECORDS_FAILED = "RecordsFailed"
    RECORDS_INVALID = "RecordsInvalid"
    RECORDS_REDELIVERED = "RecordsRedelivered"
    OUTCOMES_TOO_LATE_TO_COUNT = "OutcomesTooLateToCount"
    DUPLICATES_DROPPED = "DuplicatesDropped"
    IMPRESSIONS_COUNTED = "ImpressionsCounted"
    DELIVERY_EVENTS_COUNTED = "DeliveryEventsCounted"
    DELIVERY_DUPLICATES_DROPPED = "DeliveryDuplicatesDropped"
    DELIVERY_EVENTS_FAILED = "DeliveryEventsFailed"
    LOG_OBJECTS_WRITTEN = "LogObjectsWritten"
    LOG_ROWS_WRITTEN = "LogRowsWritten"
    PACING_STEPS = "PacingSteps"
    CAMPAIGNS_PACED = "CampaignsPaced"
    PACING_FAILURES = "PacingFailures"
    PACING_DEFERRED = "PacingDeferred"
    CAMPAIGNS_EXHAUSTED = "CampaignsExhausted"
    BUDGETS_EXHAUSTED_EARLY = "BudgetsExhaustedEarly"
    CAMPAIGNS_OVER_DELIVERED = "CampaignsOverDelivered"
    CANDIDATES_FILTERED_BY_PACING = "CandidatesFilteredByPacing"
    CANDIDATES_FILTERED_BY_PRERANK = "CandidatesFilteredByPrerank"
    PACING_STATE_UNREADABLE = "PacingStateUnreadable"
    CATALOG_SNAPSHOT_FAILURES = "CatalogSnapshotFailures"
    UNREADABLE_CAMPAIGNS = "UnreadableCampaigns"
    CAMPAIGNS_WITHOUT_EXCHANGE_RATE = "CampaignsWithoutExchangeRate"
    RETRAIN_OUTCOME = "RetrainOutcome"  # 1 per run, dimension `outcome`: promoted|challenger|registered|skipped
    RETRAIN_EXAMPLES = "RetrainExamples"
    RETRAIN_MALFORMED_LINES = "RetrainMalformedLines"
    RETRAIN_ERASED_DECISIONS_DROPPED = "RetrainErasedDecisionsDropped"
    LISTENERS_ERASED = "ListenersErased"
    MODEL_SWAPS = "ModelSwaps"
    # Which model scored a decision, by role (bounded): the version itself is in the response and the record.
    DECISIONS_BY_BOOTSTRAP_MODEL = "DecisionsByBootstrapModel"
    DECISIONS_BY_CHAMPION_MODEL = "DecisionsByChampionModel"
    DECISIONS_BY_CHALLENGER_MODEL = "DecisionsByChallengerModel"


_STANDARD_RESOLUTION = 60


class _Degradation:
    """How many failures ``count_degraded`` counted in this process: an invocation that moved it was degraded."""

    counted = 0


def count_degraded(name: MetricName, value: float = 1) -> None:
    """Add *value* to metric *name*, a failure of the function's own call that it answered around (a 503, a decision
    served unlogged): the invocation counts once in DegradedInvocations (``counting_degraded_invocations``)."""
    emit(name, MetricUnit.Count, value)
    _Degradation.counted += 1


def counting_degraded_invocations(handler: Callable[P, R]) -> Callable[P, R]:
    """*handler*, counting each invocation that counted a failure (``count_degraded``) once in DegradedInvocations,
    by function and by function version: the share CodeDeploy's canary compares between the version being deployed
    and the rest. Once, since a batch can fail a hundred events and a beacon not queued is a 503 too, and a share
    of invocations must count each one once. Inside ``metrics.log_metrics``, which flushes the function's count."""

    @functools.wraps(handler)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        before = _Degradation.counted
        try:
            return handler(*args, **kwargs)
        finally:
            if _Degradation.counted != before:
                count_by_version(MetricName.DEGRADED_INVOCATIONS)

    return counted


def counting_failures(load: Callable[[], T], name: MetricName) -> Callable[[], T]:
    """*load*, adding 1 to metric *name* each time it raises: for reloads whose failure the cache hides (the old
    value keeps serving), which only a metric can then alarm on."""

    def counted() -> T:
        try:
            return load()
        except Exception:
            metrics.add_metric(name, MetricUnit.Count, 1)
            raise

    return counted


def count_by_version(name: MetricName) -> None:
    """Add 1 to metric *name* of the function and to the same name of this function version (dimension
    ``version``, from AWS_LAMBDA_FUNCTION_VERSION). The second is a document of its own: the version dimension on
    the shared metric set would split every other metric by version."""
    emit(name, MetricUnit.Count, 1)
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="version", value=os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"))


def emit(name: MetricName, unit: MetricUnit, value: float) -> None:
    """``metrics.add_metric`` for the per-decision path: the same metric set, and so the same EMF, in a tenth
    of the time.

    Powertools' ``add_metric`` validates the name, unit and resolution on every call and formats the metric
    set into a debug message whether or not debug logging is on (Decide adds some eight metrics per decision:
    about 50 us of a 10-candidate decision on the bench). This appends the value itself while the metric's
    unit and resolution match and neither limit is near; the call that reaches a limit goes through
    ``add_metric``, which flushes there as it always does.
    """
    metric_set = metrics.provider.metric_set
    metric = metric_set.get(name)
    if metric is None:
        if len(metric_set) < MAX_METRICS - 1:
            metric_set[name.value] = {
                "Unit": unit.value,
                "StorageResolution": _STANDARD_RESOLUTION,
                "Value": [float(value)],
            }
            return
    elif (
        len(metric["Value"]) < MAX_METRICS - 1
        and metric["Unit"] == unit.value
        and metric["StorageResolution"] == _STANDARD_RESOLUTION
    ):
        metric["Value"].append(float(value))
        return
    metrics.add_metric(name, unit, value)
