"""Campaigns put into the shared local stack's table for a test (or a module) and deleted after it."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from adserve.campaigns.model import Campaign
from adserve.core.errors import NotFoundError
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore

from devstack.stack import LocalStack


@contextmanager
def stored_campaigns(
    local_stack: LocalStack, campaigns: Iterable[Campaign], *, reset: Iterable[str] = ()
) -> Iterator[None]:
    """Put *campaigns*, reset the functions in *reset* (a warm catalog or directory would not see them for up to
    its TTL), and after the block delete them and reset those functions again.

    The stack is shared by every test of a worker: a campaign left behind is served in the decisions of tests
    run after, which then see ads they did not seed.
    """
    store = CampaignStore(
        dynamodb_client(endpoint_url=local_stack.endpoint_url), local_stack.physical_name("CampaignsTable")
    )
    stored = list(campaigns)
    functions = tuple(reset)
    for campaign in stored:
        store.put(campaign)
    for function in functions:
        local_stack.reset_function(function)
    try:
        yield
    finally:
        for campaign in stored:
            with suppress(NotFoundError):  # the test deleted it itself
                store.delete(campaign.campaign_id)
        for function in functions:
            local_stack.reset_function(function)
