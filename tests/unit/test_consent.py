"""Consent resolved to permissions: the deployment's default, explicit choices, and minors."""

from pathlib import Path

import pytest
from adserve.core.vocabulary import AgeBucket
from adserve.privacy.consent import ConsentIn, ConsentRules, Permissions, ServingMode
from adserve.wiring.settings import DecideSettings
from pydantic import ValidationError

from tests.support.tc_strings import tc_string
from tests.support.template_parameters import assert_parameter_feeds_setting

NOTHING = Permissions(personalise=False, cap_frequency=False, measure=False)
EVERYTHING = Permissions(personalise=True, cap_frequency=True, measure=True)


@pytest.mark.parametrize(("policy", "expected"), [("strict", NOTHING), ("legacy", EVERYTHING)])
def test_absent_consent_means_what_the_deployment_says(policy: str, expected: Permissions) -> None:
    rules = ConsentRules(policy)  # type: ignore[arg-type]
    assert rules.permissions(None, AgeBucket.AGE_25_34) == expected
    assert rules.permissions(ConsentIn(), AgeBucket.AGE_25_34) == expected


@pytest.mark.parametrize("policy", ["strict", "legacy"])
def test_an_explicit_choice_wins_over_the_default_and_an_unsaid_one_falls_to_it(policy: str) -> None:
    rules = ConsentRules(policy)  # type: ignore[arg-type]
    default = policy == "legacy"
    permissions = rules.permissions(ConsentIn(personalise=True, measure=False), None)
    assert permissions == Permissions(personalise=True, cap_frequency=default, measure=False)
    assert permissions.mode is ServingMode.PERSONALISED


@pytest.mark.parametrize("policy", ["strict", "legacy"])
def test_a_minor_is_never_personalised_but_may_be_capped(policy: str) -> None:
    rules = ConsentRules(policy)  # type: ignore[arg-type]
    permissions = rules.permissions(ConsentIn(personalise=True, cap_frequency=True), AgeBucket.AGE_13_17)
    assert permissions == Permissions(personalise=False, cap_frequency=True, measure=policy == "legacy")
    assert permissions.mode is ServingMode.CONTEXTUAL


# With a TCF string: purposes 1 (device storage) + 2 (limited data to select ads), 3 + 4 (personalised ads
# profile), 7 (measurement)

CAPPING_ONLY = Permissions(personalise=False, cap_frequency=True, measure=False)


@pytest.mark.parametrize(
    ("purposes", "legitimate_interest", "expected"),
    [
        ((1, 2, 3, 4, 7), (), EVERYTHING),
        ((3, 4), (), Permissions(personalise=True, cap_frequency=False, measure=False)),
        ((1, 2, 3), (), CAPPING_ONLY),
        ((1,), (2,), CAPPING_ONLY),  # legitimate interest is enough for purpose 2
        ((1, 3), (), NOTHING),  # device storage alone allows no counting: capping is purpose 2's
        ((1, 2), (7,), Permissions(personalise=False, cap_frequency=True, measure=True)),
        ((2,), (7,), NOTHING),  # without purpose 1 the log row may not name the listener: measured needs 1 too
        ((), (1, 3, 4), NOTHING),  # legitimate interest is enough for purposes 2 and 7 only
    ],
)
def test_a_tc_string_grants_what_its_purposes_consent_to(
    purposes: tuple[int, ...], legitimate_interest: tuple[int, ...], expected: Permissions
) -> None:
    consent = ConsentIn(tcf=tc_string(purposes=purposes, legitimate_interest=legitimate_interest))
    assert ConsentRules("legacy").permissions(consent, None) == expected


def test_with_a_tc_string_a_boolean_can_only_take_a_permission_away() -> None:
    everything = tc_string(purposes=(1, 2, 3, 4, 7))
    nothing = tc_string()
    rules = ConsentRules("legacy")
    assert rules.permissions(ConsentIn(tcf=everything, measure=False), None) == Permissions(True, True, False)
    assert rules.permissions(ConsentIn(tcf=nothing, personalise=True), None) == NOTHING


def test_a_configured_vendor_id_needs_the_vendors_own_consent_too() -> None:
    rules = ConsentRules("strict", tcf_vendor_id=755)
    ours = tc_string(
        purposes=(1, 2, 3, 4), legitimate_interest=(7,), vendors=(755,), vendor_legitimate_interests=(755,)
    )
    theirs = tc_string(purposes=(1, 2, 3, 4, 7), vendors=(1, 1000), vendor_legitimate_interests=(12,))
    assert rules.permissions(ConsentIn(tcf=ours), None) == EVERYTHING
    assert rules.permissions(ConsentIn(tcf=theirs), None) == NOTHING


@pytest.mark.parametrize(
    ("restrictions", "expected"),
    [
        ([(3, 0, 755, 755)], Permissions(personalise=False, cap_frequency=True, measure=True)),  # not allowed
        ([(1, 0, 700, 800)], Permissions(personalise=True, cap_frequency=False, measure=False)),  # a range holding us
        ([(7, 1, 755, 755)], Permissions(personalise=True, cap_frequency=True, measure=False)),  # consent only: none
        ([(1, 2, 755, 755)], Permissions(personalise=True, cap_frequency=False, measure=False)),  # interest only
        ([(3, 0, 1, 754), (1, 0, 756, 900)], EVERYTHING),  # other vendors' restrictions
    ],
)
def test_the_publishers_restrictions_on_the_configured_vendor_take_away_what_they_say(
    restrictions: list[tuple[int, int, int, int]], expected: Permissions
) -> None:
    # Given the user's consent to purposes 1 to 4 and legitimate interest for 7, for vendor 755 on both counts
    granted = {
        "purposes": (1, 2, 3, 4),
        "legitimate_interest": (7,),
        "vendors": (755,),
        "vendor_legitimate_interests": (755,),
    }
    restricted = tc_string(**granted, restrictions=restrictions)
    # Then a deployment that is vendor 755 gets what the publisher's restrictions leave; one without a vendor id
    # cannot tell which restrictions are its own and reads the user's choices alone
    assert ConsentRules("strict", tcf_vendor_id=755).permissions(ConsentIn(tcf=restricted), None) == expected
    assert ConsentRules("strict").permissions(ConsentIn(tcf=restricted), None) == EVERYTHING


def test_the_iab_example_string_grants_what_its_purposes_say() -> None:
    # iabtcf-java's example: purposes 3-9 consented, so personalised ads, but no device storage: nothing may name
    # the listener, neither a counter nor a measured log row
    example = "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA"
    permissions = ConsentRules().permissions(ConsentIn(tcf=example), AgeBucket.AGE_25_34)
    assert permissions == Permissions(personalise=True, cap_frequency=False, measure=False)


def test_a_malformed_tc_string_is_a_validation_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        ConsentIn(tcf="COrEAV4O")
    [error] = raised.value.errors()
    assert error["loc"] == ("tcf",)
    assert "not a valid TC string" in error["msg"]


@pytest.mark.parametrize("given", ["yes", "true", "1", 1, "on"])
def test_a_permission_is_given_by_json_true_alone(given: object) -> None:
    with pytest.raises(ValidationError, match="cap_frequency"):
        ConsentIn.model_validate({"cap_frequency": given})
    assert ConsentIn.model_validate({"cap_frequency": True}).cap_frequency is True


@pytest.mark.parametrize(
    ("documented", "expected"),
    [
        ("CP-x2RrQaXJP___TS_FRu5FoAfIAAAAAAIYgAAAAAA", EVERYTHING),
        (
            "CP-x2RrQaXJP___TS_FRu5FoAbIAAAAAAIYgAAAAAA",
            Permissions(personalise=True, cap_frequency=False, measure=True),
        ),
    ],
)
def test_the_strings_docs_api_offers_to_try_grant_what_it_says(documented: str, expected: Permissions) -> None:
    assert documented in (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert ConsentRules("strict").permissions(ConsentIn(tcf=documented), AgeBucket.AGE_25_34) == expected


def test_a_deployment_can_name_its_tcf_vendor_and_none_is_the_default() -> None:
    """The vendor check is in the template, not only in the settings: a stack could not set it before."""
    assert_parameter_feeds_setting("DecideFunction", "TcfVendorId", DecideSettings, "tcf_vendor_id")
    required = {
        name: "x"
        for name in (
            "CAMPAIGNS_TABLE_NAME",
            "FREQUENCY_CAPS_TABLE_NAME",
            "OUTCOMES_QUEUE_URL",
            "SIGNING_KEY_SECRET_ID",
            "PSEUDONYM_KEY_SECRET_ID",
            "MODELS_BUCKET_NAME",
            "LOGS_BUCKET_NAME",
            "PACING_TABLE_NAME",
        )
    } | {"MODEL_DIR": "/opt/model"}
    assert DecideSettings.from_env(required).tcf_vendor_id == 0
    assert DecideSettings.from_env(required | {"TCF_VENDOR_ID": "755"}).tcf_vendor_id == 755
