"""Models of the campaign admin API beyond the Campaign document itself."""

import base64
import binascii
import hashlib
import hmac
from typing import Final

from pydantic import BaseModel, Field

from adserve.campaigns.model import Campaign
from adserve.core.errors import InvalidInputError

MAX_PAGE: Final = 50
"""Campaigns per page at most: one written now is at most 64 KiB as stored (``MAX_DOCUMENT_BYTES``), so a full
page stays within Lambda's 6 MB response whatever the campaigns hold."""
MAX_PAGE_BYTES: Final = 4 * 1024 * 1024
"""The documents a page holds at most, JSON-escaped as the response carries them (a quote two bytes, an emoji
twelve): a page of documents stored before ``MAX_DOCUMENT_BYTES`` (up to three times larger), or of many
characters past ASCII, ends early rather than past Lambda's 6 MB response, which escapes the body once more."""


class CampaignListResponse(BaseModel):
    campaigns: list[Campaign]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page; null on the last. A page may hold fewer than `limit`.",
    )


def encode_cursor(campaign_id: str) -> str:
    """The opaque cursor of a page that ends at this campaign id: the id and a short check of it, so that a
    mistyped or cut-short cursor is refused rather than read as an id."""
    key = campaign_id.encode()
    return base64.urlsafe_b64encode(key + _check(key)).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The campaign id a cursor continues after; InvalidInputError for one that fails its check (``_check``)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, check = raw[:-_CHECK_BYTES], raw[-_CHECK_BYTES:]
        genuine = 0 < len(key) <= MAX_KEY_BYTES and hmac.compare_digest(check, _check(key))
        campaign_id = key.decode() if genuine else ""
    except (binascii.Error, UnicodeDecodeError, ValueError):
        campaign_id = ""
    if not campaign_id or encode_cursor(campaign_id) != cursor:
        raise InvalidInputError("cursor is not one a previous page gave", field="query.cursor")
    return campaign_id


_CHECK_BYTES: Final = 4
MAX_KEY_BYTES: Final = 2048
"""DynamoDB's limit on a partition key: no page ends on a longer one, and a Scan refuses to start after one."""


def _check(key: bytes) -> bytes:
    """Not a signature (anyone may page the list they may read): a check that a made-up cursor fails."""
    return hashlib.blake2b(key, digest_size=_CHECK_BYTES, person=b"adserve-cursor").digest()
