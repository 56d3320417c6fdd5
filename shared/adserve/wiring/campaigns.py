"""Wiring shared by every function that reads the campaign table."""

from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.pacing_store import DynamoPacingStore


def campaign_store(table_name: str) -> CampaignStore:
    return CampaignStore(dynamodb_client(), table_name)


def delivery_store(table_name: str) -> DynamoDeliveryStore:
    return DynamoDeliveryStore(dynamodb_client(), table_name)


def pacing_store(table_name: str) -> DynamoPacingStore:
    return DynamoPacingStore(dynamodb_client(), table_name)
