"""Ad ids claimed beside their campaigns, against moto in server mode: one campaign per ad id, races included."""

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from adserve.campaigns.model import Campaign
from adserve.cli.main import load_campaigns
from adserve.core.errors import ConflictError, InvalidInputError, NotFoundError
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CLAIM_PREFIX, OWNER_ATTRIBUTE, CampaignStore
from adserve.dal.json_clients import DynamoDBJsonClient

from devstack.stack import LocalStack
from tests.support.builders import campaign


@pytest.fixture
def store(local_stack: LocalStack) -> Iterator[CampaignStore]:
    """The campaigns table's store; every campaign a test leaves is deleted after it (the stack is shared)."""
    table = local_stack.physical_name("CampaignsTable")
    store = CampaignStore(dynamodb_client(endpoint_url=local_stack.endpoint_url), table)
    yield store
    for left in store.list_campaigns():
        if left.campaign_id.startswith("claims-"):
            store.delete(left.campaign_id)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def with_ads(campaign_id: str, *ad_ids: str) -> Campaign:
    base = campaign(campaign_id=campaign_id)
    creative = base.creatives[0]
    return base.model_copy(update={"creatives": [creative.model_copy(update={"ad_id": ad}) for ad in ad_ids]})


def claim_owner(store: CampaignStore, local_stack: LocalStack, ad_id: str) -> str | None:
    item = (
        dynamodb_client(endpoint_url=local_stack.endpoint_url)
        .get_item(
            TableName=local_stack.physical_name("CampaignsTable"),
            Key={"campaign_id": {"S": CLAIM_PREFIX + ad_id}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return None if item is None else item[OWNER_ATTRIBUTE]["S"]


def put_at_once(store: CampaignStore, campaigns: list[Campaign]) -> list[str]:
    """Put every campaign from a thread of its own, all released at one moment; each put's outcome, in order:
    "stored", or the message it was refused with."""
    start, outcomes = threading.Barrier(len(campaigns)), ["stored"] * len(campaigns)

    def put(index: int) -> None:
        start.wait()
        try:
            store.put(campaigns[index])
        except InvalidInputError as error:
            outcomes[index] = str(error)

    threads = [threading.Thread(target=put, args=(index,)) for index in range(len(campaigns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_of_campaigns_put_at_once_with_one_new_ad_id_one_is_stored(store: CampaignStore) -> None:
    for _ in range(3):
        # Given eight campaigns that name the same new ad id, put at the same moment
        shared = unique("ad-raced")
        contenders = [with_ads(unique("claims-race"), shared) for _ in range(8)]
        outcomes = put_at_once(store, contenders)
        # Then exactly one is stored, and each other was refused naming it
        [winner] = [c.campaign_id for c, outcome in zip(contenders, outcomes, strict=True) if outcome == "stored"]
        refused = [outcome for outcome in outcomes if outcome != "stored"]
        assert all(f"{shared} is campaign {winner}'s" in outcome for outcome in refused)
        holders = [c.campaign_id for c in store.list_campaigns() if shared in {ad.ad_id for ad in c.creatives}]
        assert holders == [winner]


def test_an_ad_id_given_up_or_deleted_with_its_campaign_may_be_another_campaigns(
    store: CampaignStore, local_stack: LocalStack
) -> None:
    # Given a campaign with two ads
    first, second = unique("ad-kept"), unique("ad-given-up")
    owner = with_ads(unique("claims-owner"), first, second)
    store.put(owner)
    assert claim_owner(store, local_stack, second) == owner.campaign_id
    # When it gives one up, that one is released, and another campaign may take it
    store.put(with_ads(owner.campaign_id, first))
    assert claim_owner(store, local_stack, second) is None
    taker = with_ads(unique("claims-taker"), second)
    store.put(taker)
    with pytest.raises(InvalidInputError, match=f"{first} is campaign {owner.campaign_id}'s"):
        store.put(with_ads(taker.campaign_id, second, first))
    # And once the owner is deleted, so is its claim: its ad may be the taker's too
    store.delete(owner.campaign_id)
    assert claim_owner(store, local_stack, first) is None
    store.put(with_ads(taker.campaign_id, second, first))
    assert claim_owner(store, local_stack, first) == taker.campaign_id
    # and no claim is ever listed as a campaign
    assert not [c for c in store.list_campaigns() if c.campaign_id.startswith(CLAIM_PREFIX)]


def test_a_claim_whose_campaign_is_gone_is_taken_over(store: CampaignStore, local_stack: LocalStack) -> None:
    # Given a claim left by a campaign that no longer exists (deleted while its document could not be read)
    ad_id = unique("ad-stale")
    dynamodb_client(endpoint_url=local_stack.endpoint_url).put_item(
        TableName=local_stack.physical_name("CampaignsTable"),
        Item={"campaign_id": {"S": CLAIM_PREFIX + ad_id}, OWNER_ATTRIBUTE: {"S": "claims-gone"}},
    )
    with pytest.raises(NotFoundError):
        store.get("claims-gone")
    # When another campaign names its ad id, it is stored and holds the claim
    taker = with_ads(unique("claims-heir"), ad_id)
    store.put(taker)
    assert claim_owner(store, local_stack, ad_id) == taker.campaign_id


def test_two_puts_of_one_campaign_at_once_leave_the_claims_of_the_one_stored(
    store: CampaignStore, local_stack: LocalStack
) -> None:
    # Given a campaign put twice at the same moment with other ad ids each time
    campaign_id, common = unique("claims-twice"), unique("ad-common")
    versions = [with_ads(campaign_id, common, unique("ad-own")) for _ in range(4)]
    assert put_at_once(store, versions) == ["stored"] * len(versions)
    # Then the campaign's claims are those of the version stored, and no other version's ad id stays claimed
    stored = {creative.ad_id for creative in store.get(campaign_id).creatives}
    every = {creative.ad_id for version in versions for creative in version.creatives}
    assert {ad_id for ad_id in every if claim_owner(store, local_stack, ad_id) == campaign_id} == stored


class WrittenMeanwhile:
    """The store's DynamoDB client, with another writer's write landing just before a transaction of this one, as
    a PUT between its reads and its write would: before the first that ``when`` picks, or before every one."""

    def __init__(self, client: DynamoDBJsonClient, write: Callable[[], None], when: Callable[[str], bool]) -> None:
        self._client, self._write, self._when = client, write, when

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **params: Any) -> Any:
        if self._when(str(params["TransactItems"])):
            self._write()
        return self._client.transact_write_items(**params)


def test_a_stale_claim_is_not_taken_over_from_a_campaign_that_took_its_ad_id_back_meanwhile(
    store: CampaignStore, local_stack: LocalStack
) -> None:
    # Given a claim of ad x left stale by campaign B (B holds only y now: replaced while it could not be read)
    ad_x, ad_y, b_id = unique("ad-x"), unique("ad-y"), unique("claims-b")
    store.put(with_ads(b_id, ad_y))
    client = dynamodb_client(endpoint_url=local_stack.endpoint_url)
    table = local_stack.physical_name("CampaignsTable")
    client.put_item(TableName=table, Item={"campaign_id": {"S": CLAIM_PREFIX + ad_x}, OWNER_ATTRIBUTE: {"S": b_id}})
    # When campaign A names x, and B takes x back between A's reads and A's taking the stale claim over
    taken_back: list[str] = []

    def b_takes_x_back() -> None:
        if not taken_back:
            taken_back.append(b_id)
            store.put(with_ads(b_id, ad_y, ad_x))

    meanwhile = WrittenMeanwhile(client, b_takes_x_back, lambda items: ":stale" in items)
    racing = CampaignStore(meanwhile, table)  # type: ignore[arg-type]
    a_id = unique("claims-a")
    with pytest.raises(InvalidInputError, match=f"{ad_x} is campaign {b_id}'s"):
        racing.put(with_ads(a_id, ad_x))
    # Then A was refused: B alone holds x, and the claim is B's
    assert taken_back == [b_id]
    holders = [c.campaign_id for c in store.list_campaigns() if ad_x in {ad.ad_id for ad in c.creatives}]
    assert holders == [b_id]
    assert claim_owner(store, local_stack, ad_x) == b_id


def test_a_load_that_others_keep_writing_over_stops_with_a_conflict_saying_what_was_written(
    store: CampaignStore, local_stack: LocalStack
) -> None:
    # Given a campaigns file of two, whose second another writer replaces before each of the load's writes of it
    first, second = with_ads(unique("claims-load"), unique("ad-l1")), with_ads(unique("claims-load"), unique("ad-l2"))
    writes: list[str] = []

    def another_writes() -> None:  # each time another document
        writes.append(f"Written by another, {len(writes) + 1}")
        store.put(second.model_copy(update={"name": writes[-1]}))

    client = dynamodb_client(endpoint_url=local_stack.endpoint_url)
    meanwhile = WrittenMeanwhile(client, another_writes, lambda items: second.campaign_id in items)
    racing = CampaignStore(meanwhile, local_stack.physical_name("CampaignsTable"))  # type: ignore[arg-type]
    # When it is loaded, then the load stops at the second with a conflict (a 409's error, not a crash)
    with pytest.raises(ConflictError, match="the 1 campaigns before it were written, none after"):
        load_campaigns(racing, [first, second])
    assert store.get(first.campaign_id) == first
    assert store.get(second.campaign_id).name == writes[-1]
