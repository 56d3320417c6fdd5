"""Campaigns in DynamoDB: one item per campaign, the whole document stored as a JSON string.

A JSON attribute keeps the item schema in one place (the pydantic model) and the catalog load a single Scan.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from adserve.campaigns.model import Campaign
from adserve.core.errors import ConflictError, InvalidInputError, NotFoundError
from adserve.dal.json_clients import DynamoDBJsonClient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

DOCUMENT_ATTRIBUTE = "document"
CURRENCY_ATTRIBUTE = "currency"
_KEEPS_CURRENCY = (
    "attribute_not_exists(#document) OR #currency = :currency"
    " OR (attribute_not_exists(#currency) AND contains(#document, :currency_json))"
)
"""A PUT keeps a stored campaign's currency: none stored, the same attribute, or (stored before the attribute) the
same currency in its document."""
DELETE_ATTEMPTS = 3
"""Reads of a campaign PUT again while it is being deleted before the delete gives up (a 409)."""
_PRE_CURRENCY_IS_USD = " OR (attribute_not_exists(#currency) AND NOT contains(#document, :currency_key))"
"""A document stored before campaigns had a currency is in USD, the default it reads as."""


class CampaignStore:
    def __init__(self, client: DynamoDBJsonClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def put(self, campaign: Campaign, *, ad_owners: Mapping[str, str] | None = None) -> None:
        """Create or replace; a stored campaign keeps its currency (InvalidInputError, nothing written).

        Its delivery is counted in micro-units of that currency, and budgets, pacing and reports compare those
        counts with its amounts: a change would add euros to dollars. The currency is an attribute of its own so
        that one conditional PutItem checks it; in an item stored before it was (or by an older release, which
        drops it), the condition finds the currency in the document as ``model_dump_json`` writes it.

        Its creatives' ad ids must not be another campaign's: an ad id names one creative across the catalog.
        *ad_owners* (``ad_owners()``, kept up to date by the caller) answers that for a load of many campaigns
        with one Scan in all; without it, one filtered Scan per put (``_ad_ids_taken``).
        """
        owners = self._owners_of_ads_of(campaign) if ad_owners is None else ad_owners
        taken = {
            creative.ad_id: owner
            for creative in campaign.creatives
            if (owner := owners.get(creative.ad_id, campaign.campaign_id)) != campaign.campaign_id
        }
        if taken:
            raise InvalidInputError(
                "ad ids name one creative across the catalog: "
                + "; ".join(f"{ad_id} is campaign {owner}'s" for ad_id, owner in sorted(taken.items()))
            )
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "campaign_id": {"S": campaign.campaign_id},
                    DOCUMENT_ATTRIBUTE: {"S": campaign.model_dump_json()},
                    CURRENCY_ATTRIBUTE: {"S": campaign.currency},
                },
                ConditionExpression=_KEEPS_CURRENCY + (_PRE_CURRENCY_IS_USD if campaign.currency == "USD" else ""),
                ExpressionAttributeNames={"#currency": CURRENCY_ATTRIBUTE, "#document": DOCUMENT_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":currency": {"S": campaign.currency},
                    ":currency_json": {"S": f'"currency":{json.dumps(campaign.currency)}'},
                    **({":currency_key": {"S": '"currency":'}} if campaign.currency == "USD" else {}),
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise InvalidInputError(
                f"campaign {campaign.campaign_id} is priced in {self._currency_of(campaign.campaign_id)}, the "
                f"currency its delivery is counted in: a campaign keeps its currency; create a new campaign to "
                f"buy in {campaign.currency}"
            ) from None

    def ad_owners(self) -> dict[str, str]:
        """Every stored campaign's ad ids, each with its campaign's id (one Scan, as ``list_campaigns``)."""
        return {creative.ad_id: c.campaign_id for c in self.list_campaigns() for creative in c.creatives}

    def _owners_of_ads_of(self, campaign: Campaign) -> dict[str, str]:
        """``ad_owners`` read from only the other campaigns that hold one of the campaign's ad ids.

        Both served, they would share one ad's model features and its outcome markers (``seen#<decision>#<ad>``:
        the second impression in a break was dropped as a duplicate). One Scan that returns only the documents
        holding one of the ids as ``"ad_id":"<id>"`` (how ``model_dump_json`` writes it): it reads the table
        but sends back only those, and a campaign write is rare. Two PUTs racing with one new id can both pass.
        """
        needles = {
            f":ad{index}": {"S": f'"ad_id":{json.dumps(creative.ad_id)}'}
            for index, creative in enumerate(campaign.creatives)
        }
        holds_one = " OR ".join(f"contains(#document, {name})" for name in needles)
        pages = self._client.scan_pages(
            TableName=self._table,
            FilterExpression=f"campaign_id <> :me AND ({holds_one})",
            ExpressionAttributeNames={"#document": DOCUMENT_ATTRIBUTE},
            ExpressionAttributeValues={":me": {"S": campaign.campaign_id}, **needles},
        )
        return {
            creative.ad_id: other.campaign_id
            for page in pages
            for other in _readable(page["Items"])
            for creative in other.creatives
        }

    def _currency_of(self, campaign_id: str) -> str:
        """The stored campaign's currency, as its document says (the attribute repeats it, when there is one)."""
        try:
            return _campaign(self._item(campaign_id) or {}).currency
        except UnreadableCampaignError:
            return "another currency"

    def _item(self, campaign_id: str) -> "dict[str, AttributeValueTypeDef] | None":
        item = self._client.get_item(
            TableName=self._table, Key={"campaign_id": {"S": campaign_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else dict(item)

    def get(self, campaign_id: str) -> Campaign:
        item = self._item(campaign_id)
        if item is None:
            raise NotFoundError(f"campaign {campaign_id} does not exist")
        try:
            return _campaign(item)
        except UnreadableCampaignError as error:  # left out of every list, as the catalog leaves it out: not served
            _left_out(campaign_id, error)
            raise NotFoundError(
                f"campaign {campaign_id} is stored in a form this release refuses; PUT it again to replace it"
            ) from None

    def delete(self, campaign_id: str, *, keep: Callable[[Campaign], None] | None = None) -> None:
        """Delete the campaign (NotFoundError when there is none).

        *keep*, when given, is handed the stored campaign first (``delivery.report.delete_keeping_report`` keeps
        it beside its delivery), and the item is deleted only if it is still what was handed over: a PUT that
        lands in between is read and handed over in its turn (up to ``DELETE_ATTEMPTS`` times), so what is kept
        is what was deleted. A document this release cannot read is deleted with nothing handed over.
        """
        for _ in range(DELETE_ATTEMPTS):
            item = self._item(campaign_id)
            if item is None:
                raise NotFoundError(f"campaign {campaign_id} does not exist")
            document = item.get(DOCUMENT_ATTRIBUTE)
            if keep is not None:
                with suppress(UnreadableCampaignError):  # nothing a report could read either: nothing to keep
                    keep(_campaign(item))
            request: dict[str, Any] = {
                "TableName": self._table,
                "Key": {"campaign_id": {"S": campaign_id}},
                "ConditionExpression": "attribute_exists(campaign_id) AND attribute_not_exists(#document)",
                "ExpressionAttributeNames": {"#document": DOCUMENT_ATTRIBUTE},
            }
            if document:  # deleted only while it is still what was read (and handed over)
                request |= {
                    "ConditionExpression": "#document = :document",
                    "ExpressionAttributeValues": {":document": document},
                }
            try:
                self._client.delete_item(**request)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue  # changed (or deleted) since it was read: read it again
            return
        raise ConflictError(f"campaign {campaign_id} changed while it was being deleted; try again")

    def page(self, limit: int, after: str | None = None) -> tuple[list[Campaign], str | None]:
        """Up to ``limit`` readable campaigns in the table's order after the campaign id ``after``, and the id
        to continue after (None on the last page). One Scan of ``limit`` items: a page costs what it holds,
        whatever the size of the table; unreadable ones are left out as ``list_campaigns`` leaves them."""
        request: dict[str, Any] = {"TableName": self._table, "Limit": limit}
        if after is not None:
            request["ExclusiveStartKey"] = {"campaign_id": {"S": after}}
        answer = self._client.scan(**request)
        last = answer.get("LastEvaluatedKey")
        return _readable(answer["Items"]), None if last is None else last["campaign_id"]["S"]

    def list_campaigns(self) -> list[Campaign]:
        """Every campaign this code can read, by id.

        A stored document the model refuses (valid under an earlier, looser release, or written by a later one)
        is left out and logged by id and field, not content: one such item must not stop the catalog, pacing
        and the admin list for every other campaign. Left out of the catalog, it is not served.
        """
        campaigns = [
            campaign for page in self._client.scan_pages(TableName=self._table) for campaign in _readable(page["Items"])
        ]
        return sorted(campaigns, key=lambda campaign: campaign.campaign_id)


class UnreadableCampaignError(Exception):
    """A stored item that is no campaign this code reads: its document refused by the model (valid under an
    earlier, looser release, or written by a later one) or missing (an item written by hand or by another tool).
    ``fields`` names what was refused, never its values."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


def _campaign(item: "Mapping[str, AttributeValueTypeDef]") -> Campaign:
    document = item.get(DOCUMENT_ATTRIBUTE, {}).get("S")
    if document is None:
        raise UnreadableCampaignError([DOCUMENT_ATTRIBUTE])
    try:
        return Campaign.model_validate_json(document)
    except ValidationError as error:
        raise UnreadableCampaignError(sorted({".".join(map(str, e["loc"])) for e in error.errors()})) from None


def _readable(items: "Sequence[Mapping[str, AttributeValueTypeDef]]") -> list[Campaign]:
    """The campaigns of a page of items, each unreadable one left out (``_left_out``)."""
    campaigns: list[Campaign] = []
    for item in items:
        try:
            campaigns.append(_campaign(item))
        except UnreadableCampaignError as error:
            _left_out(item.get("campaign_id", {}).get("S"), error)
    return campaigns


def _left_out(campaign_id: str | None, error: UnreadableCampaignError) -> None:
    """Log and count a stored campaign left out of a list, by id and the fields refused, never their values."""
    # Imported here: observability builds its logger and metrics from the environment when first imported, and
    # the local stack imports this store to seed campaigns before it has set the functions' environment.
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    from adserve.core.observability import MetricName, emit, logger  # noqa: PLC0415

    logger.error("stored campaign unreadable; left out", extra={"campaign_id": campaign_id, "fields": error.fields})
    emit(MetricName.UNREADABLE_CAMPAIGNS, MetricUnit.Count, 1)
