"""Production wiring: builds each function's domain objects from its settings and real AWS clients."""

import random
from datetime import timedelta
from functools import cache

from aws_lambda_powertools.metrics import MetricUnit

from adserve.campaign_directory import CampaignDirectory
from adserve.catalog import CampaignCatalog
from adserve.dal.aws_clients import dynamodb_client, s3_client, sqs_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.decision_queue import DecisionQueue
from adserve.dal.frequency_cap_store import FrequencyCapStore
from adserve.dal.impression_counter import DynamoImpressionCounter
from adserve.dal.log_store import S3LogStore
from adserve.dal.outcome_queue import OutcomeQueue
from adserve.dal.signing_key import load_signer
from adserve.decisioning import DecisionService, PolicySettings
from adserve.errors import ModelLoadError
from adserve.features import FeatureEncoder
from adserve.observability import MetricName, logger, metrics
from adserve.recording import OutcomeRecorder
from adserve.scoring import CtrModel
from adserve.settings import DecideSettings, RecordSettings, TrackSettings
from adserve.tracking import TrackingService


def campaign_store(table_name: str) -> CampaignStore:
    return CampaignStore(dynamodb_client(), table_name)


def decision_service(settings: DecideSettings) -> DecisionService:
    encoder = FeatureEncoder()
    budget = settings.cap_read_timeout_seconds
    caps_client = dynamodb_client(connect_timeout=budget, read_timeout=budget, attempts=1)

    @cache
    def bootstrap_model() -> CtrModel:
        try:
            return CtrModel.load(settings.model_dir, encoder.spec)
        except ModelLoadError:
            logger.exception("model load failed", extra={"model_dir": str(settings.model_dir)})
            metrics.add_metric(MetricName.MODEL_LOAD_FAILURES, MetricUnit.Count, 1)
            raise

    return DecisionService(
        catalog=CampaignCatalog(campaign_store(settings.campaigns_table_name), encoder, settings.catalog_ttl_seconds),
        counters=FrequencyCapStore(caps_client, settings.frequency_caps_table_name),
        scorer=bootstrap_model,
        decision_log=DecisionQueue(sqs_client(), settings.outcomes_queue_url),
        signer=lambda: load_signer(settings.signing_key_secret_id),
        encoder=encoder,
        policy=PolicySettings(
            epsilon=settings.exploration_epsilon, token_ttl=timedelta(seconds=settings.token_ttl_seconds)
        ),
        rng=random.Random(),
        tracking_base_url=settings.tracking_base_url,
    )


def tracking_service(settings: TrackSettings) -> TrackingService:
    # A beacon answers within Track's 3 s timeout even when SQS hangs: two tries of at most 1.5 s each.
    queue_client = sqs_client(connect_timeout=0.5, read_timeout=1.0, attempts=2)
    return TrackingService(
        queue=OutcomeQueue(queue_client, settings.outcomes_queue_url),
        signer=lambda: load_signer(settings.signing_key_secret_id),
    )


def outcome_recorder(settings: RecordSettings) -> OutcomeRecorder:
    """Record's domain service: exactly-once counters in DynamoDB, training logs in S3, campaigns cached."""
    return OutcomeRecorder(
        counter=DynamoImpressionCounter(dynamodb_client(), settings.frequency_caps_table_name),
        campaigns=CampaignDirectory(campaign_store(settings.campaigns_table_name), settings.catalog_ttl_seconds),
        logs=S3LogStore(s3_client(), settings.logs_bucket_name),
    )
