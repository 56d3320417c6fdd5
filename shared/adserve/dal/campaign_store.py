"""Campaigns in DynamoDB: one item per campaign, the whole document stored as a JSON string.

A JSON attribute keeps the item schema in one place (the pydantic model) and the catalog load a single Scan.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from adserve.campaigns.model import Campaign
from adserve.core.errors import NotFoundError
from adserve.dal.json_clients import DynamoDBJsonClient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

DOCUMENT_ATTRIBUTE = "document"


class CampaignStore:
    def __init__(self, client: DynamoDBJsonClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def put(self, campaign: Campaign) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "campaign_id": {"S": campaign.campaign_id},
                DOCUMENT_ATTRIBUTE: {"S": campaign.model_dump_json()},
            },
        )

    def get(self, campaign_id: str) -> Campaign:
        item = self._client.get_item(
            TableName=self._table, Key={"campaign_id": {"S": campaign_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            raise NotFoundError(f"campaign {campaign_id} does not exist")
        return _campaign(item)

    def delete(self, campaign_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"campaign_id": {"S": campaign_id}},
                ConditionExpression="attribute_exists(campaign_id)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise NotFoundError(f"campaign {campaign_id} does not exist") from error

    def list_campaigns(self) -> list[Campaign]:
        campaigns: list[Campaign] = []
        for page in self._client.scan_pages(TableName=self._table):
            campaigns.extend(_campaign(item) for item in page["Items"])
        return sorted(campaigns, key=lambda campaign: campaign.campaign_id)


def _campaign(item: "Mapping[str, AttributeValueTypeDef]") -> Campaign:
    return Campaign.model_validate_json(item[DOCUMENT_ATTRIBUTE]["S"])
