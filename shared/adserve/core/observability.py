"""The one place that creates the logger, tracer and metrics; configured by POWERTOOLS_* variables."""

from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
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
    EVENTS_ACCEPTED = "EventsAccepted"
    EVENTS_REJECTED = "EventsRejected"
    EVENTS_NOT_QUEUED = "EventsNotQueued"
    SIGNING_KEY_REFRESH_FAILURES = "SigningKeyRefreshFailures"
    RECORDS_PROCESSED = "RecordsProcessed"
    RECORDS_FAILED = "RecordsFailed"
    RECORDS_INVALID = "RecordsInvalid"
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
    CAMPAIGNS_EXHAUSTED = "CampaignsExhausted"
    BUDGETS_EXHAUSTED_EARLY = "BudgetsExhaustedEarly"
    CAMPAIGNS_OVER_DELIVERED = "CampaignsOverDelivered"
    CANDIDATES_FILTERED_BY_PACING = "CandidatesFilteredByPacing"
    PACING_STATE_UNREADABLE = "PacingStateUnreadable"
    RETRAIN_OUTCOME = "RetrainOutcome"  # 1 per run, dimension `outcome`: promoted|challenger|registered|skipped
    RETRAIN_EXAMPLES = "RetrainExamples"
    RETRAIN_MALFORMED_LINES = "RetrainMalformedLines"
    MODEL_SWAPS = "ModelSwaps"
    # Which model scored a decision, by role (bounded): the version itself is in the response and the record.
    DECISIONS_BY_BOOTSTRAP_MODEL = "DecisionsByBootstrapModel"
    DECISIONS_BY_CHAMPION_MODEL = "DecisionsByChampionModel"
    DECISIONS_BY_CHALLENGER_MODEL = "DecisionsByChallengerModel"
