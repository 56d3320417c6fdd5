"""Record's wiring: exactly-once counters in DynamoDB, training logs in S3, campaigns cached."""

from adserve.campaigns.directory import CampaignDirectory
from adserve.dal.aws_clients import dynamodb_client, s3_client
from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.impression_counter import DynamoImpressionCounter
from adserve.dal.log_store import S3LogStore
from adserve.outcomes.recording import OutcomeRecorder
from adserve.wiring.campaigns import campaign_store
from adserve.wiring.settings import RecordSettings


def outcome_recorder(settings: RecordSettings) -> OutcomeRecorder:
    """Record's domain service: exactly-once counters in DynamoDB, training logs in S3, campaigns cached."""
    return OutcomeRecorder(
        counter=DynamoImpressionCounter(dynamodb_client(), settings.frequency_caps_table_name),
        campaigns=CampaignDirectory(campaign_store(settings.campaigns_table_name), settings.catalog_ttl_seconds),
        logs=S3LogStore(s3_client(), settings.logs_bucket_name),
        # Record is asynchronous: a transaction of 27 items may take longer than Decide's 2 s read budget.
        delivery=DynamoDeliveryStore(dynamodb_client(read_timeout=5.0), settings.delivery_table_name),
    )
