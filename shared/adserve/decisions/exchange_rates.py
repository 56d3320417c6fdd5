"""The one currency Decide ranks in, and what a unit of each other currency is worth in it.

A campaign is priced in its own currency (``Campaign.currency``: its budgets and delivery are counted in it), but
the policy compares expected values, score x value, across campaigns: a CPM of 1000 JPY is not worth more than
10 USD. So the catalog ranks every ad at ``value_cpm x rate(currency)``, in the deployment's ranking currency
(``RANKING_CURRENCY``, ``EXCHANGE_RATES``); the decision record logs that value, the one the policy ranked with.
A currency without a rate cannot be ranked against the others: its campaigns are not served (the catalog leaves
them out at load, ``CampaignsWithoutExchangeRate``) rather than ranked at a guess. The rates are the operator's
to keep current; Decide reads them at start.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExchangeRates:
    currency: str = "USD"
    """The ranking currency."""
    rates: Mapping[str, float] = field(default_factory=dict)
    """What one unit of each other currency is worth in ``currency``."""

    def rate(self, currency: str) -> float | None:
        """The factor from *currency* into the ranking currency (1 for itself); None when there is none."""
        return 1.0 if currency == self.currency else self.rates.get(currency)

    def missing(self, currency: str) -> str:
        """Why a campaign priced in *currency* is not served, in words."""
        return f"priced in {currency}, which has no rate into the ranking currency {self.currency} (EXCHANGE_RATES)"
