"""Models of the campaign admin API beyond the Campaign document itself."""

import base64
import binascii
import re
from typing import Final

from pydantic import BaseModel, Field

from adserve.campaigns.model import Campaign
from adserve.core.errors import InvalidInputError
from adserve.core.identifiers import IDENTIFIER_PATTERN

MAX_PAGE: Final = 50
"""Campaigns per page at most: a campaign's document is at most 64 KiB (the PUT body's limit), so a full page
stays within Lambda's 6 MB response whatever the campaigns hold."""


class CampaignListResponse(BaseModel):
    campaigns: list[Campaign]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page; null on the last. A page may hold fewer than `limit`.",
    )


def encode_cursor(campaign_id: str) -> str:
    """The opaque cursor of a page that ends at this campaign id."""
    return base64.urlsafe_b64encode(campaign_id.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The campaign id a cursor continues after; InvalidInputError for one this API did not give out."""
    try:
        campaign_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        campaign_id = ""
    if not _IDENTIFIER.fullmatch(campaign_id) or encode_cursor(campaign_id) != cursor:
        raise InvalidInputError("cursor is not one a previous page gave")
    return campaign_id


_IDENTIFIER: Final = re.compile(IDENTIFIER_PATTERN)
"""A cursor names a campaign id: any other text (``eyJ9`` is ``{"}``) was made up, not given by a page."""
