"""Campaign documents: what the admin API accepts and what it refuses, with the reason."""

import json
from pathlib import Path

import pytest
from adserve.campaigns.model import Campaign, CampaignInput
from adserve.cli.main import CampaignFileError, read_campaigns
from pydantic import ValidationError

from tests.support.builders import campaign


def test_a_valid_campaign_normalises_flight_dates_to_utc() -> None:
    parsed = campaign(flight_start="2026-01-01T01:00:00+01:00")
    assert parsed.flight_start.isoformat() == "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"flight_end": "2025-01-01T00:00:00Z"}, "flight_end must be after flight_start"),
        ({"flight_start": "2026-01-01T00:00:00"}, "must carry a timezone"),
        ({"targeting": {"countries": ["sweden"]}}, "countries"),
        ({"targeting": {"hours": [24]}}, "hours"),
        ({"targeting": {"devices": ["fridge"]}}, "devices"),
        ({"targeting": {"genres": ["pop", "pop"]}}, "must not repeat"),
        ({"targeting": {"planets": ["mars"]}}, "planets"),
        ({"frequency_caps": [{"max": 0, "window": "day"}]}, "max"),
        ({"frequency_caps": [{"max": 3, "window": "fortnight"}]}, "window"),
        ({"frequency_caps": [{"max": 3, "window": "day"}, {"max": 4, "window": "day"}]}, "repeat a (scope, window)"),
        ({"placements": []}, "placements"),
        ({"placements": ["billboard"]}, "placements"),
        ({"value_cpm": 0}, "value_cpm"),
        ({"campaign_id": "x" * 65}, "campaign_id"),
        ({"creatives": []}, "creatives"),
    ],
)
def test_an_invalid_campaign_is_refused_with_the_reason(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        campaign(**overrides)
    assert reason in str(refused.value)


def test_two_creatives_may_not_share_an_ad_id() -> None:
    creative = campaign().creatives[0].model_dump(mode="json")
    with pytest.raises(ValidationError, match="distinct ad_id"):
        campaign(creatives=[creative, creative])


def test_a_campaign_with_caps_is_capped() -> None:
    assert campaign(frequency_caps=[{"max": 1, "window": "lifetime"}]).is_capped
    assert not campaign().is_capped


def test_a_campaigns_file_is_held_to_the_rules_of_new_writes(tmp_path: Path) -> None:
    # Given a file with a campaign whose CPM counts no micro-unit an impression (the stored model still reads it)
    cheap = campaign(campaign_id="cmp-cheap").model_dump(mode="json") | {"value_cpm": 0.0004}
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([cheap]))
    assert Campaign.model_validate(cheap).value_cpm == 0.0004
    # When it is read to be loaded, it is refused naming the field
    with pytest.raises(CampaignFileError) as refused:
        read_campaigns(path)
    assert [reason.split(": ")[1] for reason in refused.value.reasons] == ["value_cpm"]


@pytest.mark.parametrize(
    ("value_cpm", "accepted"), [(12.345, True), (2.675, True), (0.001, True), (0.0015, False), (12.3456, False)]
)
def test_a_cpm_is_written_only_as_whole_micro_units_an_impression(value_cpm: float, accepted: bool) -> None:
    # Spend is counted per impression in whole micro-units: a fourth decimal would be rounded on every impression
    document = campaign().model_dump(mode="json") | {"value_cpm": value_cpm}
    if accepted:
        assert CampaignInput.model_validate(document).spend_micros_per_impression == round(value_cpm * 1000)
    else:
        with pytest.raises(ValidationError, match="more than three decimals"):
            CampaignInput.model_validate(document)
    assert Campaign.model_validate(document).value_cpm == value_cpm  # a stored one stays readable


def test_a_campaigns_file_with_one_ad_id_in_two_campaigns_is_refused_whole(tmp_path: Path) -> None:
    first = campaign(campaign_id="cmp-a").model_dump(mode="json")
    second = campaign(campaign_id="cmp-b").model_dump(mode="json")
    second["creatives"][0]["ad_id"] = first["creatives"][0]["ad_id"]
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([first, second]))
    with pytest.raises(CampaignFileError) as refused:
        read_campaigns(path)
    assert refused.value.reasons == ["cmp-b: ad_id cmp-a-ad-1 is also campaign cmp-a's"]


def test_a_placement_none_of_the_campaigns_creatives_plays_is_refused_on_write() -> None:
    document = campaign().model_dump(mode="json") | {"placements": ["audio_midroll", "display_companion"]}
    with pytest.raises(ValidationError, match=r"no creative plays in display_companion \(it plays display or video\)"):
        CampaignInput.model_validate(document)
    assert Campaign.model_validate(document).placements  # a stored one stays readable: it serves where it plays


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("frequency_caps",), [{"max": True, "window": "day"}], ("frequency_caps", 0, "max")),
        (("targeting",), {"hours": [True, "2"]}, ("targeting", "hours", 0)),
        (("creatives", 0, "duration_seconds"), "30", ("creatives", 0, "duration_seconds")),
        (("flight_start",), 0, ("flight_start",)),
        (("flight_end",), 1900000000, ("flight_end",)),
        (("flight_end",), "1900000000.5", ("flight_end",)),
        (("flight_start",), "-5", ("flight_start",)),
    ],
)
def test_a_write_takes_numbers_as_json_numbers_and_dates_as_strings_while_stored_documents_read_as_before(
    path: tuple[str | int, ...], value: object, field: tuple[str | int, ...]
) -> None:
    # Given a campaign document with a value lax validation would coerce (true as 1, "30" as 30, 0 as 1970)
    document = json.loads(campaign().model_dump_json())
    inner = document
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    # Then a write refuses it, naming the field
    with pytest.raises(ValidationError) as refused:
        CampaignInput.model_validate(document)
    assert field in [error["loc"][: len(field)] for error in refused.value.errors()]
    # while the stored model reads it as it always did (only a write is held to the stricter rule)
    Campaign.model_validate(document)


@pytest.mark.parametrize("flight_end", ["2027-01-01T00:00:00Z", "2027-01-01t00:00:00z", "2027-01-01T01:00:00+01:00"])
def test_a_write_takes_every_rfc_3339_date_time(flight_end: str) -> None:
    document = json.loads(campaign().model_dump_json())
    document["flight_end"] = flight_end
    assert CampaignInput.model_validate(document).flight_end.isoformat() == "2027-01-01T00:00:00+00:00"
