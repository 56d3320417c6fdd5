"""Listing the campaigns table again, against moto in server mode: only documents changed since are parsed."""

import uuid

from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore

from devstack.stack import LocalStack
from tests.support.builders import campaign
from tests.support.stored_campaigns import stored_campaigns


def test_a_second_listing_reuses_the_campaigns_of_unchanged_documents_and_reads_the_changed_ones(
    local_stack: LocalStack,
) -> None:
    # Given two campaigns stored, and a store that has listed them once
    prefix = f"listing-{uuid.uuid4().hex[:8]}"
    kept, changed = campaign(campaign_id=f"{prefix}-kept"), campaign(campaign_id=f"{prefix}-changed")
    table = local_stack.physical_name("CampaignsTable")
    reader = CampaignStore(dynamodb_client(endpoint_url=local_stack.endpoint_url), table)
    writer = CampaignStore(dynamodb_client(endpoint_url=local_stack.endpoint_url), table)
    with stored_campaigns(local_stack, [kept, changed]):
        first = {c.campaign_id: c for c in reader.list_campaigns()}
        # When one of them is changed by another writer, and the store lists again
        writer.put(changed.model_copy(update={"value_cpm": changed.value_cpm + 1.0}))
        second = {c.campaign_id: c for c in reader.list_campaigns()}
        # and again after it is deleted
        writer.delete(changed.campaign_id)
        third = {c.campaign_id: c for c in reader.list_campaigns()}
    # Then the unchanged campaign is the very object parsed the first time, the changed one is read as it is now,
    # and a deleted one is gone
    assert second[kept.campaign_id] is first[kept.campaign_id] is third[kept.campaign_id]
    assert second[changed.campaign_id] == changed.model_copy(update={"value_cpm": changed.value_cpm + 1.0})
    assert first[changed.campaign_id] == changed
    assert changed.campaign_id not in third
