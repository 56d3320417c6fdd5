"""Whether Decide serves a campaign at all, whoever listens: its status, its flight and its currency's rate.

One rule for the three places that ask it: explain mode's first removals, the pacing step's choice of campaigns to
pace, and the delivery report's ``not_served``. In that order, so each names the first reason a campaign is off.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import Campaign, CampaignStatus


class BookingRule(StrEnum):
    """What of the booking keeps a campaign off the air (values as explain mode's ``Rule`` names them)."""

    STATUS = "status"
    FLIGHT = "flight"
    CURRENCY = "currency"


@dataclass(frozen=True)
class NotServed:
    rule: BookingRule
    detail: str


def not_served(campaign: Campaign, now: datetime, rates: ExchangeRates | None) -> NotServed | None:
    """Why none of the campaign's ads is served at *now*; None when its booking lets them be. *rates*: the
    deployment's (None: unknown, the currency is not judged). A flight off comes before the currency: a campaign
    past or before its flight would not serve whatever its rates."""
    if campaign.status is not CampaignStatus.ACTIVE:
        return NotServed(BookingRule.STATUS, f"the campaign is {campaign.status.value}")
    if not campaign.flight_start <= now < campaign.flight_end:
        flight = f"the flight runs {campaign.flight_start.isoformat()} to {campaign.flight_end.isoformat()}"
        return NotServed(BookingRule.FLIGHT, f"{flight}, not at {now.isoformat()}")
    if rates is not None and rates.rate(campaign.currency) is None:
        return NotServed(BookingRule.CURRENCY, rates.missing(campaign.currency))
    return None
