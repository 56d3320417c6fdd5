"""Ad ids claimed beside their campaigns, against moto in server mode: one campaign per ad id, races included."""

import threading
import uuid
from collections.abc import Iterator

import pytest
from adserve.campaigns.model import Campaign
from adserve.core.errors import InvalidInputError, NotFoundError
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CLAIM_PREFIX, OWNER_ATTRIBUTE, CampaignStore

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
