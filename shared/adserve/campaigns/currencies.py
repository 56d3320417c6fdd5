"""Active ISO 4217 currency codes, checked in rather than a dependency.

A budget's currency must be one an advertiser can pay in. The list is List One of the ISO 4217 maintenance
agency (SIX), national and regional currencies only: fund codes, precious metals, the SDR and the testing
and "no currency" codes (XTS, XXX) are left out. It changes a few times a decade (VED 2021, SLE 2022,
ZWG 2024, XCG for ANG 2025, EUR for BGN 2026); a checked-in frozenset costs nothing in the Lambda layer,
where pycountry would add megabytes of locale data for one lookup.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final

from pydantic import AfterValidator, StringConstraints

ACTIVE_CURRENCIES: Final = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)


WITHDRAWN_CURRENCIES: Final = frozenset(
    ["ANG", "BGN", "BYR", "CUC", "EEK", "HRK", "LTL", "LVL", "MRO", "SLL", "STD", "VEF", "ZWL"]
)
"""National codes ISO 4217 withdrew since 2011 (List Three): campaigns stored in one before still read and may keep
a rate. A release that drops a code from ``ACTIVE_CURRENCIES`` adds it here, so a deployment whose exchange rates
name it still starts."""


def _active(code: str) -> str:
    if code not in ACTIVE_CURRENCIES:
        raise ValueError("must be an active ISO 4217 currency code, e.g. USD, EUR, SEK")
    return code


def _rated(code: str) -> str:
    if code not in ACTIVE_CURRENCIES and code not in WITHDRAWN_CURRENCIES:
        raise ValueError("must be an ISO 4217 currency code, active or withdrawn since 2011, e.g. USD, EUR, BGN")
    return code


CurrencyCode = Annotated[str, AfterValidator(_active)]
"""An active ISO 4217 code: the currency a campaign is written in, and the ranking currency."""

RatedCurrencyCode = Annotated[str, AfterValidator(_rated)]
"""An exchange rate's code: an active one, or one withdrawn (``WITHDRAWN_CURRENCIES``), so that campaigns stored in
it can go on being served at a rate the operator gives (BGN at its fixed rate into EUR, say)."""

StoredCurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""A stored campaign's currency: any code of ISO 4217's shape. One withdrawn since it was written (BGN for EUR,
2026) still reads, so its delivery is counted, reported and kept with it; held to ``CurrencyCode``, the document
would read as nothing, and Record would drop its impressions as an unknown campaign's. It is served only with a
rate for it (``RatedCurrencyCode``), and no write takes it."""


@dataclass(frozen=True)
class ExchangeRates:
    """Ranking across currencies. A campaign is priced in its own currency (its budgets and delivery are counted in
    it), but Decide compares expected values, score x value, across campaigns: a CPM of 1000 JPY is not worth more
    than 10 USD. So ads are ranked at ``value_cpm x rate(currency)`` in the deployment's ranking currency
    (``RANKING_CURRENCY``, ``EXCHANGE_RATES``); the decision record logs that value, the one the policy ranked with.
    A currency without a rate cannot be ranked against the others: its campaigns are neither served (the catalog
    leaves them out at load, ``CampaignsWithoutExchangeRate``) nor paced (the step skips them, so a rate that
    arrives later does not meet a p raised while nothing served). The rates are the operator's to keep current."""

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


USD_ONLY: Final = ExchangeRates()
"""The default deployment's rates: ranking in USD, no other currency."""
