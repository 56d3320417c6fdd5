"""Ranking across currencies: every ad is ranked at value_cpm x the rate of its campaign's currency into the
deployment's ranking currency (RANKING_CURRENCY, EXCHANGE_RATES); a campaign in a currency without a rate is
not served."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import Campaign
from adserve.core.errors import ConfigurationError
from adserve.core.observability import MetricName, metrics
from adserve.core.vocabulary import Placement
from adserve.decisions.api import Rule
from adserve.decisions.service import DecisionService
from adserve.models.features import FeatureEncoder
from adserve.outcomes.decision_records import LoggedCandidate
from adserve.wiring.settings import DecideSettings, PacingSettings

from devstack.fakes import ConstantScorer, InMemoryCampaigns, RecordingDecisionLog
from devstack.stack import DEFAULT_TEMPLATE
from devstack.template import load_template
from tests.support.builders import campaign, decision_request
from tests.support.decision_service import in_memory_service
from tests.support.log_lines import powertools_log_lines
from tests.support.template_parameters import DECIDE_REQUIRED, assert_parameter_feeds_setting

# ------------------------------------------------------------------------------------------------ settings


def test_ranking_is_in_usd_without_rates_by_default() -> None:
    settings = DecideSettings.from_env(DECIDE_REQUIRED)
    assert (settings.ranking_currency, settings.exchange_rates) == ("USD", {})


def test_the_ranking_currency_and_the_rates_are_read_from_the_environment() -> None:
    settings = DecideSettings.from_env(
        DECIDE_REQUIRED | {"RANKING_CURRENCY": "EUR", "EXCHANGE_RATES": '{"USD": 0.93, "SEK": 0.088, "JPY": 1}'}
    )
    assert settings.ranking_currency == "EUR"
    assert settings.exchange_rates == {"USD": 0.93, "SEK": 0.088, "JPY": 1.0}


@pytest.mark.parametrize("currency", ["usd", "XXX", "US", "USDX", "", "VEF"])
def test_a_ranking_currency_that_is_not_an_active_iso_4217_code_is_refused(currency: str) -> None:
    with pytest.raises(ConfigurationError, match="RANKING_CURRENCY"):
        DecideSettings.from_env(DECIDE_REQUIRED | {"RANKING_CURRENCY": currency})


@pytest.mark.parametrize(
    "rates",
    [
        "not json",
        "[1.08]",
        '"EUR"',
        "1.08",
        '{"EUR": 0}',
        '{"EUR": -1.08}',
        '{"EUR": Infinity}',
        '{"EUR": NaN}',
        '{"EUR": 1e400}',
        '{"EUR": "1.08"}',
        '{"EUR": true}',
        '{"EUR": null}',
        '{"eur": 1.08}',
        '{"XXX": 1.08}',
        '{"EUR": 1.08, "EUR": 1.1}',
        '{"USD": 1}',  # the ranking currency's rate is 1 by definition
    ],
)
def test_rates_that_are_not_an_object_of_active_codes_to_positive_finite_numbers_are_refused(rates: str) -> None:
    with pytest.raises(ConfigurationError, match="EXCHANGE_RATES"):
        DecideSettings.from_env(DECIDE_REQUIRED | {"EXCHANGE_RATES": rates})


def test_a_rate_may_name_a_currency_iso_4217_withdrew_so_its_stored_campaigns_serve_on() -> None:
    # BGN became EUR in 2026: campaigns stored in it still read, and a release that withdraws a code must not stop a
    # deployment whose rates name it from starting
    settings = DecideSettings.from_env(DECIDE_REQUIRED | {"EXCHANGE_RATES": '{"EUR": 1.08, "BGN": 0.552}'})
    assert settings.rates.rate("BGN") == 0.552


def test_the_template_parameters_feed_the_settings() -> None:
    for function, settings in (("DecideFunction", DecideSettings), ("PacingFunction", PacingSettings)):
        assert_parameter_feeds_setting(function, "RankingCurrency", settings, "ranking_currency")
        assert_parameter_feeds_setting(function, "ExchangeRates", settings, "exchange_rates")


@pytest.mark.parametrize(
    ("value", "deployable"),
    [
        ("{}", True),
        ('{"EUR": 1.08, "SEK": 0.095, "JPY": 0.0066}', True),
        ('{"EUR":1e-3}', True),
        (' {\n  "EUR": 1.08\n}\n', True),  # JSON's whitespace, outside the braces too
        ('{"EUR": 01.08}', False),  # no leading zero in JSON
        ('{"EUR": -1.08}', False),  # a rate is positive
        ('{"EUR": 0}', False),
        ('{"EUR": 0.000}', False),
        ('{"EUR":\f1.08}', False),  # nor a form feed
        ("{", False),  # what --parameter-overrides leaves of an unquoted object
        ("{EUR:1.08}", False),  # a shell's quotes gone
        ('{"EUR": "1.08"}', False),
    ],
)
def test_the_template_refuses_a_rates_value_that_is_no_json_object_of_codes_to_numbers(
    value: str, deployable: bool
) -> None:
    # A deploy with a value cut short fails, rather than every decision (the settings refuse it on the first)
    pattern = load_template(DEFAULT_TEMPLATE)["Parameters"]["ExchangeRates"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is deployable


# ------------------------------------------------------------------------------------------------ ranking

USD_RATES = ExchangeRates("USD", {"JPY": 0.0066, "EUR": 1.08})
BASE_URL = "https://api.example.com"


@pytest.fixture(autouse=True)
def emitted() -> Iterator[dict[str, Any]]:
    metrics.clear_metrics()
    yield metrics.metric_set
    metrics.clear_metrics()


def priced(campaign_id: str, currency: str, value_cpm: float) -> Campaign:
    return campaign(campaign_id=campaign_id, advertiser_id=f"adv-{campaign_id}", currency=currency, value_cpm=value_cpm)


def decide(decider: DecisionService, **overrides: Any) -> list[str]:
    response = decider.decide(decision_request(max_ads=3, **overrides), BASE_URL)
    return [ad.campaign_id for ad in response.ads]


def logged_values(log: RecordingDecisionLog) -> dict[str, float]:
    candidates = log.records[-1].candidates
    assert isinstance(candidates, list)
    return {c.campaign_id: c.value_cpm for c in candidates if isinstance(c, LoggedCandidate)}


@pytest.mark.parametrize(
    ("prices", "rates", "order", "values"),
    [
        # 1000 JPY is 6.6 USD at 0.0066 and 7 EUR 7.56 USD: by the raw numbers 1000 JPY would come first
        (
            [("yen", "JPY", 1000.0), ("dollar", "USD", 10.0), ("euro", "EUR", 7.0)],
            USD_RATES,
            ["dollar", "euro", "yen"],
            {"yen": 6.6, "dollar": 10.0, "euro": 7.56},
        ),
        # the ranking currency need not be USD: 10 USD is 9.3 EUR and 100 SEK 8.8 EUR, 9 EUR between them
        (
            [("dollar", "USD", 10.0), ("krona", "SEK", 100.0), ("euro", "EUR", 9.0)],
            ExchangeRates("EUR", {"USD": 0.93, "SEK": 0.088}),
            ["dollar", "euro", "krona"],
            {"dollar": 9.3, "krona": 8.8, "euro": 9.0},
        ),
    ],
)
def test_ads_rank_by_value_in_the_ranking_currency_and_the_record_logs_the_values_ranked_with(
    prices: list[tuple[str, str, float]], rates: ExchangeRates, order: list[str], values: dict[str, float]
) -> None:
    # Given one model score for all, when a greedy decision ranks them: by value in the ranking currency
    log = RecordingDecisionLog()
    decider = in_memory_service(*(priced(*price) for price in prices), log=log, rates=rates)
    assert decide(decider) == order
    # And the record's values are the ones the policy multiplied the scores by: off-policy replay uses them
    assert logged_values(log) == pytest.approx(values)


def test_the_pre_ranking_key_is_the_converted_value_times_the_prior() -> None:
    decider = in_memory_service(priced("yen", "JPY", 1000.0), priced("dollar", "USD", 10.0), rates=USD_RATES)
    index = decider.catalog.ads_for(Placement.AUDIO_MIDROLL)
    scorer = ConstantScorer(score=0.5)
    priors = dict(
        zip([ad.campaign.campaign_id for ad in index.ads], index.priors(scorer, FeatureEncoder()).tolist(), strict=True)
    )
    assert priors == pytest.approx({"yen": 3.3, "dollar": 5.0})


def test_a_usd_deployment_ranks_and_logs_a_usd_cpm_unchanged_to_the_bit() -> None:
    log = RecordingDecisionLog()
    decider = in_memory_service(priced("dollar", "USD", 12.345), log=log)
    decide(decider)
    assert logged_values(log) == {"dollar": 12.345}


# ---------------------------------------------------------------------------------- no rate: not served


def test_a_campaign_in_a_currency_without_a_rate_is_left_out_at_each_load_logged_and_counted(
    emitted: dict[str, Any],
) -> None:
    # Given a catalog with SEK campaigns and no SEK rate, one of them past its flight
    ended = campaign(campaign_id="krona-ended", currency="SEK", flight_end="2026-01-02T00:00:00Z")
    source = InMemoryCampaigns(
        [priced("krona", "SEK", 100.0), priced("kr2", "SEK", 90.0), ended, priced("dollar", "USD", 1.0)]
    )
    decider = in_memory_service(source=source, rates=USD_RATES, monotonic=lambda: 0.0)
    # When the catalog loads
    with powertools_log_lines("INFO") as lines:
        ranked = decide(decider)
    # Then the SEK campaigns cannot be ranked against the others and are not served: counted, logged once (the
    # ended one would not serve anyway: nothing to act on, not counted)
    assert ranked == ["dollar"]
    assert [ad.campaign.campaign_id for ad in decider.catalog.ads_for(Placement.AUDIO_MIDROLL).ads] == ["dollar"]
    assert list(emitted[MetricName.CAMPAIGNS_WITHOUT_EXCHANGE_RATE]["Value"]) == [2.0]
    warnings = [line for line in lines if "exchange rate" in line["message"]]
    assert len(warnings) == 1
    assert warnings[0]["campaigns"] == 2
    assert warnings[0]["currencies"] == ["SEK"]
    # And a catalog without such campaigns counts nothing
    metrics.clear_metrics()
    decide(in_memory_service(priced("dollar", "USD", 1.0), rates=USD_RATES))
    assert MetricName.CAMPAIGNS_WITHOUT_EXCHANGE_RATE not in metrics.metric_set


def test_explain_names_the_missing_rate_after_the_status_and_the_flight() -> None:
    decider = in_memory_service(
        priced("krona", "SEK", 100.0),
        campaign(campaign_id="paused-krona", currency="SEK", status="paused"),
        campaign(campaign_id="over-krona", currency="SEK", flight_end="2026-01-02T00:00:00Z"),
        campaign(campaign_id="over-yen", currency="JPY", flight_end="2026-01-02T00:00:00Z"),
        priced("dollar", "USD", 1.0),
        rates=USD_RATES,
    )
    response = decider.decide(decision_request(explain=True), BASE_URL)
    assert response.explanation is not None
    rules = {ad.campaign_id: ad for ad in response.explanation.ads}
    assert rules["krona"].rule is Rule.CURRENCY
    assert rules["krona"].detail == "priced in SEK, which has no rate into the ranking currency USD (EXCHANGE_RATES)"
    assert rules["over-krona"].rule is Rule.FLIGHT  # ended: it would not serve whatever its currency
    assert rules["paused-krona"].rule is Rule.STATUS
    assert rules["over-yen"].rule is Rule.FLIGHT
    assert rules["dollar"].rule is Rule.SERVED
