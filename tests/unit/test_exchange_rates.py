"""Ranking across currencies: every ad is ranked at value_cpm x the rate of its campaign's currency into the
deployment's ranking currency (RANKING_CURRENCY, EXCHANGE_RATES); a campaign in a currency without a rate is
not served."""

import pytest
from adserve.core.errors import ConfigurationError
from adserve.wiring.settings import DecideSettings

from tests.support.template_parameters import assert_parameter_feeds_setting

REQUIRED = {
    "CAMPAIGNS_TABLE_NAME": "campaigns",
    "PACING_TABLE_NAME": "pacing",
    "FREQUENCY_CAPS_TABLE_NAME": "caps",
    "OUTCOMES_QUEUE_URL": "https://sqs.example/queue",
    "LOGS_BUCKET_NAME": "logs",
    "SIGNING_KEY_SECRET_ID": "signing",
    "PSEUDONYM_KEY_SECRET_ID": "pseudonyms",
    "MODEL_DIR": "/opt/model",
    "MODELS_BUCKET_NAME": "models",
}


# ------------------------------------------------------------------------------------------------ settings


def test_ranking_is_in_usd_without_rates_by_default() -> None:
    settings = DecideSettings.from_env(REQUIRED)
    assert (settings.ranking_currency, settings.exchange_rates) == ("USD", {})


def test_the_ranking_currency_and_the_rates_are_read_from_the_environment() -> None:
    settings = DecideSettings.from_env(
        REQUIRED | {"RANKING_CURRENCY": "EUR", "EXCHANGE_RATES": '{"USD": 0.93, "SEK": 0.088, "JPY": 1}'}
    )
    assert settings.ranking_currency == "EUR"
    assert settings.exchange_rates == {"USD": 0.93, "SEK": 0.088, "JPY": 1.0}


@pytest.mark.parametrize("currency", ["usd", "XXX", "US", "USDX", "", "VEF"])
def test_a_ranking_currency_that_is_not_an_active_iso_4217_code_is_refused(currency: str) -> None:
    with pytest.raises(ConfigurationError, match="RANKING_CURRENCY"):
        DecideSettings.from_env(REQUIRED | {"RANKING_CURRENCY": currency})


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
        DecideSettings.from_env(REQUIRED | {"EXCHANGE_RATES": rates})


def test_the_template_parameters_feed_the_settings() -> None:
    assert_parameter_feeds_setting("DecideFunction", "RankingCurrency", DecideSettings, "ranking_currency")
    assert_parameter_feeds_setting("DecideFunction", "ExchangeRates", DecideSettings, "exchange_rates")
