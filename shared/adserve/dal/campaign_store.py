"""Campaigns in DynamoDB: one item per campaign, the whole document stored as a JSON string.

A JSON attribute keeps the item schema in one place (the pydantic model) and the catalog load a single Scan.
"""

import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from adserve.campaigns.model import Campaign
from adserve.core.errors import CampaignStoreUnavailableError, ConflictError, InvalidInputError, NotFoundError
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.dal.transactions import (
    CONFLICT,
    DUPLICATE,
    NO_REASON,
    ForeignItem,
    cancellation_reasons,
    cancelled_items,
    conflict_backoff,
    describe,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

DOCUMENT_ATTRIBUTE = "document"
CURRENCY_ATTRIBUTE = "currency"
KEEPS_CURRENCY = (
    "attribute_not_exists(#document) OR #currency = :currency"
    " OR (attribute_not_exists(#currency) AND contains(#document, :currency_json))"
)
"""A PUT keeps a stored campaign's currency: none stored, the same attribute, or (stored before the attribute) the
same currency in its document (values: ``currency_values``). The delivery table's deleted campaigns are checked
with it too."""
DELETE_ATTEMPTS = 3
"""Reads of a campaign PUT again while it is being deleted before the delete gives up (a 409)."""
WRITE_ATTEMPTS = 4
"""Reads of a campaign changed by another writer while it is being PUT before the PUT gives up (a 409)."""
CLAIM_PREFIX = "ad#"
"""The key of an ad id's claim, ``ad#<ad_id>``: an item beside the campaigns naming the campaign whose creative the
ad id is (``OWNER_ATTRIBUTE``). No campaign id holds a ``#`` (``Identifier``), so no campaign is read as a claim."""
OWNER_ATTRIBUTE = "owner"
_NOT_A_CLAIM = "NOT begins_with(campaign_id, :claim)"
_CLAIM_VALUES: "dict[str, AttributeValueTypeDef]" = {":claim": {"S": CLAIM_PREFIX}}
_UNCLAIMED = "attribute_not_exists(campaign_id) OR #owner = :me"
_PRE_CURRENCY_IS_USD = " OR (attribute_not_exists(#currency) AND NOT contains(#document, :currency_key))"
"""A document stored before campaigns had a currency is in USD, the default it reads as."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _unavailable_on_aws_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """What the table answered after the client's retries (throttling, a 5xx, a timeout) as
    CampaignStoreUnavailableError, so the admin API answers it with a 503 and a Retry-After, not a 500."""

    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except ClientError as error:
            raise CampaignStoreUnavailableError(f"campaigns table: {describe(error)}") from error
        except BotoCoreError as error:
            raise CampaignStoreUnavailableError(f"campaigns table: {error}") from error

    return call


class CampaignStore:
    def __init__(self, client: DynamoDBJsonClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._listed: Mapping[str, Campaign] = _NOTHING_PARSED
        """The last ``list_campaigns``' campaigns by stored document: what the next one need not parse again."""

    @_unavailable_on_aws_errors
    def put(
        self,
        campaign: Campaign,
        *,
        ad_owners: Mapping[str, str] | None = None,
        created_only_if: ForeignItem | None = None,
    ) -> None:
        """Create or replace; a stored campaign keeps its currency (InvalidInputError, nothing written).

        Its delivery is counted in micro-units of that currency, and budgets, pacing and reports compare those
        counts with its amounts: a change would add euros to dollars. The currency is an attribute of its own so
        that one condition checks it; in an item stored before it was (or by an older release, which drops it),
        the condition finds the currency in the document as ``model_dump_json`` writes it.

        Its creatives' ad ids must not be another campaign's: an ad id names one creative across the catalog.
        One transaction writes the campaign, only if it is still as read, with a claim of each of its ad ids
        (``CLAIM_PREFIX``), each only if unclaimed or already the campaign's, and releases the ids it gave up: of
        two PUTs racing with one new ad id, one is refused. A claim whose campaign no longer holds the ad id is
        taken over. Campaigns stored before claims existed hold none, so the other campaigns' documents are
        searched too: *ad_owners* (``ad_owners()``, kept up to date by the caller) answers that for a load of many
        campaigns with one Scan in all; without it, one filtered Scan per put (``_owners_of_ads_of``).

        *created_only_if*: a check of another table the transaction holds to when it creates the campaign (none
        stored), not when it replaces one; failing, its refusal is raised, unless the campaign was created
        meanwhile: the next attempt then replaces it (``delivery.report.put_keeping_currency`` checks a deleted
        campaign's currency with it).
        """
        owners = self._owners_of_ads_of(campaign) if ad_owners is None else ad_owners
        taken = {
            creative.ad_id: owner
            for creative in campaign.creatives
            if (owner := owners.get(creative.ad_id, campaign.campaign_id)) != campaign.campaign_id
        }
        if taken:
            raise InvalidInputError(_taken(taken), field="creatives")
        ad_ids = [creative.ad_id for creative in campaign.creatives]
        stale: dict[str, str] = {}  # claims of campaigns that no longer hold the ad id: taken over
        owners_read: dict[str, Any] = {}  # those campaigns as read: taken over only while they still are
        foreign: set[str] = set()  # ad ids it gave up whose claim is another campaign's: left alone
        for attempt in range(WRITE_ATTEMPTS):
            stored = self._item(campaign.campaign_id)
            released = [ad_id for ad_id in _ad_ids_of(stored) if ad_id not in ad_ids and ad_id not in foreign]
            checked = sorted(set(stale.values()))
            elsewhere = created_only_if if stored is None else None
            items = [
                self._conditional_put(campaign, stored),
                *(self._claim(ad_id, campaign.campaign_id, stale.get(ad_id)) for ad_id in ad_ids),
                *(self._release(ad_id, campaign.campaign_id) for ad_id in released),
                *(self._still_as_read(owner, owners_read[owner]) for owner in checked),
                *([elsewhere.item] if elsewhere else []),
            ]
            try:
                self._client.transact_write_items(TransactItems=items)
                return
            except ClientError as error:
                reasons, found = cancellation_reasons(error), cancelled_items(error)
                failed = [index for index, reason in enumerate(reasons) if reason == DUPLICATE]
                refusal = _foreign_failure(elsewhere, error, reasons) or _refusal(
                    campaign, stored, elsewhere, found, failed
                )
                if refusal is not None:
                    raise refusal from None
                if not reasons:
                    raise
                claimed = {ad_ids[i - 1]: _owner_of(found[i]) for i in failed if 1 <= i <= len(ad_ids)}
                first_check = 1 + len(ad_ids) + len(released)
                foreign |= {released[i - 1 - len(ad_ids)] for i in failed if len(ad_ids) < i < first_check}
                # a campaign whose stale claim it took over changed meanwhile (it may hold the ad id again): look again
                changed = {checked[i - first_check] for i in failed if first_check <= i < first_check + len(checked)}
                stale = {ad_id: owner for ad_id, owner in stale.items() if owner not in changed}
                for ad_id, holder in claimed.items():
                    if holder is None:  # released meanwhile: claimed as unclaimed next time
                        continue
                    holds, owners_read[holder] = self._holds(holder, ad_id)
                    if holds:
                        raise InvalidInputError(_taken({ad_id: holder}), field="creatives") from None
                    stale[ad_id] = holder
                if not failed and CONFLICT not in reasons:
                    raise
            self._sleep_before(attempt, WRITE_ATTEMPTS)
        raise ConflictError(f"campaign {campaign.campaign_id} changed while it was being written; try again")

    def _conditional_put(self, campaign: Campaign, stored: "Mapping[str, AttributeValueTypeDef] | None") -> Any:
        """The campaign's PutItem, written only if it keeps the stored currency and the item is still as read."""
        unchanged, read = _unchanged(stored)
        keeps = KEEPS_CURRENCY + (_PRE_CURRENCY_IS_USD if campaign.currency == "USD" else "")
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "campaign_id": {"S": campaign.campaign_id},
                    DOCUMENT_ATTRIBUTE: {"S": campaign.model_dump_json()},
                    CURRENCY_ATTRIBUTE: {"S": campaign.currency},
                },
                "ConditionExpression": f"({keeps}) AND {unchanged}",
                "ExpressionAttributeNames": {"#currency": CURRENCY_ATTRIBUTE, "#document": DOCUMENT_ATTRIBUTE},
                "ExpressionAttributeValues": {
                    **currency_values(campaign.currency),
                    **({":currency_key": {"S": '"currency":'}} if campaign.currency == "USD" else {}),
                    **read,
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _claim(self, ad_id: str, campaign_id: str, stale_owner: str | None) -> Any:
        """The ad id's claim for the campaign, written only if unclaimed, already its, or ``stale_owner``'s."""
        takes_over = {":stale": {"S": stale_owner}} if stale_owner else {}
        return {
            "Put": {
                "TableName": self._table,
                "Item": {"campaign_id": {"S": CLAIM_PREFIX + ad_id}, OWNER_ATTRIBUTE: {"S": campaign_id}},
                "ConditionExpression": _UNCLAIMED + (" OR #owner = :stale" if stale_owner else ""),
                "ExpressionAttributeNames": {"#owner": OWNER_ATTRIBUTE},
                "ExpressionAttributeValues": {":me": {"S": campaign_id}, **takes_over},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _release(self, ad_id: str, campaign_id: str) -> Any:
        """The deletion of an ad id's claim, only while it is the campaign's (or already gone)."""
        return {
            "Delete": {
                "TableName": self._table,
                "Key": {"campaign_id": {"S": CLAIM_PREFIX + ad_id}},
                "ConditionExpression": _UNCLAIMED,
                "ExpressionAttributeNames": {"#owner": OWNER_ATTRIBUTE},
                "ExpressionAttributeValues": {":me": {"S": campaign_id}},
            }
        }

    def _holds(self, campaign_id: str, ad_id: str) -> "tuple[bool, Mapping[str, AttributeValueTypeDef] | None]":
        """Whether the stored campaign still has a creative of the ad id, and the campaign as read: if it does not,
        its claim is stale (left by a campaign replaced or deleted while this release could not read it), and is
        taken over only while the campaign is still as read (``_still_as_read``). One it cannot read is taken to
        hold it."""
        item = self._item(campaign_id)
        if item is None:
            return False, None
        try:
            return ad_id in {creative.ad_id for creative in _campaign(item).creatives}, item
        except UnreadableCampaignError:
            return True, item

    def _still_as_read(self, campaign_id: str, item: "Mapping[str, AttributeValueTypeDef] | None") -> Any:
        """A check, in the transaction, that a campaign is still as it was read (or still absent)."""
        return {
            "ConditionCheck": {"TableName": self._table, "Key": {"campaign_id": {"S": campaign_id}}, **_as_read(item)}
        }

    @staticmethod
    def _sleep_before(attempt: int, attempts: int) -> None:
        """Jittered backoff before another attempt; none after the last."""
        if attempt + 1 < attempts:
            time.sleep(conflict_backoff(attempt))

    @_unavailable_on_aws_errors
    def ad_owners(self) -> dict[str, str]:
        """Every stored campaign's ad ids, each with its campaign's id (one Scan, as ``list_campaigns``)."""
        return {creative.ad_id: c.campaign_id for c in self.list_campaigns() for creative in c.creatives}

    def _owners_of_ads_of(self, campaign: Campaign) -> dict[str, str]:
        """``ad_owners`` read from only the other campaigns that hold one of the campaign's ad ids.

        Both served, they would share one ad's model features and its outcome markers (``seen#<decision>#<ad>``:
        the second impression in a break was dropped as a duplicate). One Scan that returns only the documents
        holding one of the ids as ``"ad_id":"<id>"`` (how ``model_dump_json`` writes it): it reads the table
        but sends back only those, and a campaign write is rare. Two PUTs racing with one new id both pass it;
        the claims (``put``) refuse one.
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

    def _item(self, campaign_id: str) -> "dict[str, AttributeValueTypeDef] | None":
        item = self._client.get_item(
            TableName=self._table, Key={"campaign_id": {"S": campaign_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else dict(item)

    @_unavailable_on_aws_errors
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

    @_unavailable_on_aws_errors
    def delete(self, campaign_id: str, *, keep: Callable[[Campaign], ForeignItem] | None = None) -> None:
        """Delete the campaign (NotFoundError when there is none).

        *keep*, when given, is handed the stored campaign and returns a write of another table made in the
        delete's own transaction (``delivery.report.delete_keeping_report`` keeps the document beside its
        delivery): the item is deleted only if it is still what was handed over, and a PUT that lands in between
        is read and handed over in its turn (up to ``DELETE_ATTEMPTS`` times), so what is kept is what was
        deleted, by the delete that deleted it. A document this release cannot read is deleted with nothing kept.
        """
        foreign: set[str] = set()  # its ad ids whose claim is another campaign's: left alone
        for attempt in range(DELETE_ATTEMPTS):
            item = self._item(campaign_id)
            if item is None:
                raise NotFoundError(f"campaign {campaign_id} does not exist")
            kept: ForeignItem | None = None
            if keep is not None:
                with suppress(UnreadableCampaignError):  # nothing a report could read either: nothing to keep
                    kept = keep(_campaign(item))
            # deleted only while it is still what was read (and handed over)
            request: Any = {"TableName": self._table, "Key": {"campaign_id": {"S": campaign_id}}, **_as_read(item)}
            released = [ad_id for ad_id in _ad_ids_of(item) if ad_id not in foreign]
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {"Delete": request},
                        *(self._release(ad_id, campaign_id) for ad_id in released),
                        *([kept.item] if kept else []),
                    ]
                )
            except ClientError as error:
                reasons = cancellation_reasons(error)
                if (beyond := _foreign_failure(kept, error, reasons)) is not None:
                    raise beyond from error
                if not reasons:
                    raise
                # changed (or deleted) since it was read: read it again; a claim another campaign holds: keep it
                foreign |= {released[i - 1] for i in range(1, len(released) + 1) if reasons[i] == DUPLICATE}
                if DUPLICATE not in reasons and CONFLICT not in reasons:
                    raise
                self._sleep_before(attempt, DELETE_ATTEMPTS)
                continue
            return
        raise ConflictError(f"campaign {campaign_id} changed while it was being deleted; try again")

    @_unavailable_on_aws_errors
    def page(self, limit: int, after: str | None, *, max_bytes: int) -> tuple[list[Campaign], str | None]:
        """Up to ``limit`` readable campaigns in the table's order after the campaign id ``after``, and the id
        to continue after (None on the last page). Scans of ``limit`` items until they hold ``limit`` campaigns or
        the table ends: the ad id claims beside the campaigns are read and skipped, so a page costs what it holds
        and the claims among it, whatever the size of the table. It also ends before its documents, escaped as a
        response carries them (``_response_bytes``), pass ``max_bytes`` (never before its first campaign), and
        past either it ends at its last campaign, the next page resuming after it. Unreadable ones are left out as
        ``list_campaigns`` leaves them."""
        campaigns: list[Campaign] = []
        held = 0
        start = after
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                "Limit": limit,
                "FilterExpression": _NOT_A_CLAIM,
                "ExpressionAttributeValues": _CLAIM_VALUES,
            }
            if start is not None:
                request["ExclusiveStartKey"] = {"campaign_id": {"S": start}}
            answer = self._client.scan(**request)
            last = answer.get("LastEvaluatedKey")
            for campaign, item in _readable_items(answer["Items"]):
                size = _response_bytes(item)
                if len(campaigns) == limit or (campaigns and held + size > max_bytes):
                    return campaigns, campaigns[-1].campaign_id
                campaigns.append(campaign)
                held += size
            if last is None:
                return campaigns, None
            if len(campaigns) == limit:
                return campaigns, campaigns[-1].campaign_id
            start = last["campaign_id"]["S"]

    @_unavailable_on_aws_errors
    def list_campaigns(self) -> list[Campaign]:
        """Every campaign this code can read, by id.

        A stored document the model refuses (valid under an earlier, looser release, or written by a later one)
        is left out and logged by id and field, not content: one such item must not stop the catalog, pacing
        and the admin list for every other campaign. Left out of the catalog, it is not served.

        A document unchanged since this store's previous listing is not parsed again: the campaign parsed from it
        then is returned (campaigns are immutable). Decide and Record list every 30 s and campaigns change far
        less often, so a refresh of 10,000 parses only the few that changed, for the documents' memory (about
        1 KB a campaign) kept between listings.
        """
        pages = self._client.scan_pages(
            TableName=self._table, FilterExpression=_NOT_A_CLAIM, ExpressionAttributeValues=_CLAIM_VALUES
        )
        readable = [pair for page in pages for pair in _readable_items(page["Items"], self._listed)]
        self._listed = {item[DOCUMENT_ATTRIBUTE]["S"]: campaign for campaign, item in readable}
        return sorted((campaign for campaign, _ in readable), key=lambda campaign: campaign.campaign_id)


class UnreadableCampaignError(Exception):
    """A stored item that is no campaign this code reads: its document refused by the model (valid under an
    earlier, looser release, or written by a later one) or missing (an item written by hand or by another tool).
    ``fields`` names what was refused, never its values."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


_NOTHING_PARSED: Mapping[str, Campaign] = MappingProxyType({})


def _campaign(
    item: "Mapping[str, AttributeValueTypeDef]", parsed: Mapping[str, Campaign] = _NOTHING_PARSED
) -> Campaign:
    """The item's campaign: the one in *parsed* under its document, else its document parsed."""
    document = item.get(DOCUMENT_ATTRIBUTE, {}).get("S")
    if document is None:
        raise UnreadableCampaignError([DOCUMENT_ATTRIBUTE])
    known = parsed.get(document)
    if known is not None:
        return known
    try:
        return Campaign.model_validate_json(document)
    except ValidationError as error:
        raise UnreadableCampaignError(sorted({".".join(map(str, e["loc"])) for e in error.errors()})) from None


def _refusal(
    campaign: Campaign,
    stored: "Mapping[str, AttributeValueTypeDef] | None",
    elsewhere: ForeignItem | None,
    found: "Sequence[Mapping[str, Any] | None]",
    failed: Sequence[int],
) -> Exception | None:
    """What a cancelled PUT refuses for good, no attempt after it could pass: the other table's check (the
    transaction's last item), unless the campaign was created meanwhile (its put failed on a stored item: the next
    attempt replaces it, and answers for the stored one); or a currency change of the stored campaign (its put,
    still as read, failed); None otherwise."""
    appeared = 0 in failed and found[0] is not None
    if elsewhere is not None and elsewhere.refusal is not None and len(found) - 1 in failed and not appeared:
        return elsewhere.refusal(found[-1])
    if 0 in failed and _document_of(found[0]) == _document_of(stored):  # still as read: the currency
        return InvalidInputError(
            f"campaign {campaign.campaign_id} is priced in {_currency_of(found[0])}, the currency its "
            f"delivery is counted in: a campaign keeps its currency; create a new campaign to buy in "
            f"{campaign.currency}",
            field="currency",
        )
    return None


def _foreign_failure(elsewhere: ForeignItem | None, error: ClientError, reasons: Sequence[str]) -> Exception | None:
    """What a failed transaction that carried another table's item means beyond this table's items: a call
    refused as a whole (either table's doing: both named), or that item's own failure other than its condition's
    (its table throttled, say); None otherwise."""
    if elsewhere is None:
        return None
    if not reasons:
        return CampaignStoreUnavailableError(f"campaigns table or {elsewhere.table}: {describe(error)}")
    if reasons[-1] not in (NO_REASON, DUPLICATE, CONFLICT):
        return elsewhere.unavailable(f"{elsewhere.table}: {reasons[-1]}")
    return None


def currency_values(currency: str) -> "dict[str, AttributeValueTypeDef]":
    """``KEEPS_CURRENCY``'s values for a campaign in *currency* (its document as ``model_dump_json`` writes it)."""
    return {":currency": {"S": currency}, ":currency_json": {"S": f'"currency":{json.dumps(currency)}'}}


def _unchanged(item: "Mapping[str, AttributeValueTypeDef] | None") -> "tuple[str, dict[str, AttributeValueTypeDef]]":
    """A condition that the campaign's item is still ``item`` as read (None: still absent), and its values."""
    if item is None:
        return "attribute_not_exists(campaign_id)", {}
    document = item.get(DOCUMENT_ATTRIBUTE)
    if document is None:
        return "attribute_exists(campaign_id) AND attribute_not_exists(#document)", {}
    return "#document = :read", {":read": document}


def _as_read(item: "Mapping[str, AttributeValueTypeDef] | None") -> dict[str, Any]:
    """``_unchanged`` as a write's or check's condition, with the names and values it uses."""
    unchanged, read = _unchanged(item)
    names = {"ExpressionAttributeNames": {"#document": DOCUMENT_ATTRIBUTE}} if "#document" in unchanged else {}
    return {"ConditionExpression": unchanged, **names, **({"ExpressionAttributeValues": read} if read else {})}


def _document_of(item: "Mapping[str, Any] | None") -> Any:
    return None if item is None else item.get(DOCUMENT_ATTRIBUTE)


def _ad_ids_of(item: "Mapping[str, AttributeValueTypeDef] | None") -> list[str]:
    """The ad ids a stored campaign claims; none for no campaign or one this release cannot read."""
    if item is None:
        return []
    try:
        return [creative.ad_id for creative in _campaign(item).creatives]
    except UnreadableCampaignError:
        return []


def _owner_of(claim: "Mapping[str, Any] | None") -> str | None:
    owner = None if claim is None else claim.get(OWNER_ATTRIBUTE, {}).get("S")
    return owner if isinstance(owner, str) else None


def _currency_of(item: "Mapping[str, Any] | None") -> str:
    """A stored campaign's currency, as its document says (the attribute repeats it, when there is one)."""
    try:
        return _campaign(item or {}).currency
    except UnreadableCampaignError:
        return "another currency"


def _taken(owners: Mapping[str, str]) -> str:
    return "ad ids name one creative across the catalog: " + "; ".join(
        f"{ad_id} is campaign {owner}'s" for ad_id, owner in sorted(owners.items())
    )


def _readable(items: "Sequence[Mapping[str, AttributeValueTypeDef]]") -> list[Campaign]:
    """The campaigns of a page of items, each unreadable one left out (``_left_out``)."""
    return [campaign for campaign, _ in _readable_items(items)]


def _readable_items(
    items: "Sequence[Mapping[str, AttributeValueTypeDef]]", parsed: Mapping[str, Campaign] = _NOTHING_PARSED
) -> "list[tuple[Campaign, Mapping[str, AttributeValueTypeDef]]]":
    """``_readable``'s campaigns, each with its item; a document in *parsed* is not parsed again."""
    campaigns: list[tuple[Campaign, Mapping[str, AttributeValueTypeDef]]] = []
    for item in items:
        try:
            campaigns.append((_campaign(item, parsed), item))
        except UnreadableCampaignError as error:
            _left_out(item.get("campaign_id", {}).get("S"), error)
    return campaigns


def _response_bytes(item: "Mapping[str, AttributeValueTypeDef]") -> int:
    """A readable campaign's document as a response carries it: JSON-escaped, where a quote takes two bytes and a
    character past ASCII six or twelve (an emoji is four bytes stored)."""
    return len(json.dumps(item[DOCUMENT_ATTRIBUTE]["S"]))


def _left_out(campaign_id: str | None, error: UnreadableCampaignError) -> None:
    """Log and count a stored campaign left out of a list, by id and the fields refused, never their values."""
    # Imported here: observability builds its logger and metrics from the environment when first imported, and
    # the local stack imports this store to seed campaigns before it has set the functions' environment.
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    from adserve.core.observability import MetricName, emit, logger  # noqa: PLC0415

    logger.error("stored campaign unreadable; left out", extra={"campaign_id": campaign_id, "fields": error.fields})
    emit(MetricName.UNREADABLE_CAMPAIGNS, MetricUnit.Count, 1)
