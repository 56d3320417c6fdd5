"""The campaign admin handler in-process against moto in server mode, tables from template.yaml."""

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from adserve.campaigns.api import encode_cursor
from adserve.campaigns.model import Campaign
from adserve.cli.main import main
from adserve.core.errors import InvalidInputError, NotFoundError
from adserve.core.vocabulary import EventType
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.delivery.counting import DeliveryEvent, DeliveryGroup, DeliveryTotals, hour_of
from adserve.delivery.report import DeletedCampaign, delete_keeping_report, put_keeping_currency

from tests.support.aws_proxy import AwsProxy, aws_proxy

EVENTS = Path(__file__).parents[2] / "events"


def sample_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def put_event(campaign_id: str, document: dict[str, Any] | str) -> dict[str, Any]:
    event = sample_event("campaigns_put_campaign.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/campaigns/{campaign_id}"
    event["pathParameters"] = {"campaign_id": campaign_id}
    event["body"] = document if isinstance(document, str) else json.dumps(document)
    return event


def get_event(campaign_id: str, method: str = "GET") -> dict[str, Any]:
    event = sample_event("campaigns_get_campaign.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/campaigns/{campaign_id}"
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} /v1/campaigns/{{campaign_id}}"
    event["pathParameters"] = {"campaign_id": campaign_id}
    return event


def list_event(**query: str) -> dict[str, Any]:
    event = sample_event("campaigns_list_campaigns.json")
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{name}={value}" for name, value in query.items())
    return event


def listed_pages(local_stack: Any, limit: str | None = None) -> list[list[str]]:
    """The campaign ids of every page GET /v1/campaigns gives, following each cursor (the stack is shared: more than
    one page)."""
    pages: list[list[str]] = []
    query = {} if limit is None else {"limit": limit}
    while True:
        response = local_stack.invoke("CampaignsFunction", list_event(**query))
        assert response["statusCode"] == 200, response
        page = json.loads(response["body"])
        pages.append([campaign["campaign_id"] for campaign in page["campaigns"]])
        if page["next_cursor"] is None:
            return pages
        query["cursor"] = page["next_cursor"]


def listed_ids(local_stack: Any, limit: str | None = None) -> list[str]:
    """Every campaign id GET /v1/campaigns lists, page after page."""
    return [campaign_id for page in listed_pages(local_stack, limit) for campaign_id in page]


def sample_campaign(**changes: Any) -> dict[str, Any]:
    """The sample event's campaign; under another campaign id its ad ids are that campaign's own (an ad id names
    one creative across the catalog)."""
    document: dict[str, Any] = json.loads(sample_event("campaigns_put_campaign.json")["body"])
    if "campaign_id" in changes:
        creatives = document["creatives"]
        document["creatives"] = [{**c, "ad_id": f"{changes['campaign_id']}-{c['ad_id']}"[:64]} for c in creatives]
    document.update(changes)
    return document


@pytest.fixture
def put_campaign(local_stack: Any) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Puts campaigns for one test and deletes them after it: the stack is shared, and a campaign left behind
    would be served in other tests' decisions."""
    stored: list[str] = []

    def put(document: dict[str, Any]) -> None:
        response = local_stack.invoke("CampaignsFunction", put_event(document["campaign_id"], document))
        assert response["statusCode"] == 200, response
        stored.append(document["campaign_id"])

    yield put
    for campaign_id in stored:
        local_stack.invoke("CampaignsFunction", get_event(campaign_id, "DELETE"))


@pytest.fixture
def delete_after(local_stack: Any) -> Iterator[Callable[[str], None]]:
    """Names campaigns a test writes through the stores, deleted after it (if still there): the stack is shared, and a
    campaign left behind would be served in other tests' decisions."""
    written: list[str] = []
    yield written.append
    for campaign_id in written:
        local_stack.invoke("CampaignsFunction", get_event(campaign_id, "DELETE"))


def test_a_campaign_round_trips_through_put_get_list_delete(local_stack: Any) -> None:
    document = sample_campaign(campaign_id="cmp-roundtrip")
    put = local_stack.invoke("CampaignsFunction", put_event("cmp-roundtrip", document))
    assert put["statusCode"] == 200, put

    got = local_stack.invoke("CampaignsFunction", get_event("cmp-roundtrip"))
    assert got["statusCode"] == 200
    assert Campaign.model_validate_json(got["body"]) == Campaign.model_validate(document)

    assert "cmp-roundtrip" in listed_ids(local_stack)

    assert local_stack.invoke("CampaignsFunction", get_event("cmp-roundtrip", "DELETE"))["statusCode"] == 204
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-roundtrip"))["statusCode"] == 404
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-roundtrip", "DELETE"))["statusCode"] == 404


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({"targeting": {"countries": ["Sweden"]}}, 422, "targeting.countries"),
        ({"targeting": {"hours": [25]}}, 422, "targeting.hours"),
        ({"frequency_caps": [{"max": 3, "window": "fortnight"}]}, 422, "frequency_caps.0.window"),
        ({"frequency_caps": [{"max": -1, "window": "day"}]}, 422, "frequency_caps.0.max"),
        ({"flight_end": "2020-01-01T00:00:00Z"}, 422, "flight_end must be after flight_start"),
        ({"campaign_id": "another-id"}, 422, "must equal the one in the path"),
        ({"campaign_id": "another-id"}, 422, '"field":"campaign_id"'),
        ({"budget": {"unit": "spend", "lifetime": 0}}, 422, "budget.lifetime"),
        ({"budget": {"unit": "spend", "daily": -1}}, 422, "budget.daily"),
        ({"budget": {"unit": "impressions", "lifetime": 10, "daily": 20}}, 422, "must not exceed the lifetime"),
        ({"budget": {"unit": "spend", "lifetime": 10}, "value_cpm": None}, 422, "value_cpm"),
        ({"currency": "EURO"}, 422, "ISO 4217"),
        ({"value_cpm": 0.0004}, 422, "value_cpm"),
        ({"budget": {"unit": "spend", "daily": 4e-7}}, 422, "at least one micro-unit"),
        ({"budget": {"unit": "spend", "daily": 4e-7}}, 422, '"field":"budget.daily"'),
        ({"budget": {"unit": "spend", "lifetime": 1.5e-6}}, 422, "at most six decimals"),
        ({"budget": {"unit": "impressions", "lifetime": True}}, 422, '"field":"budget.lifetime"'),
        ({"budget": {"unit": "spend", "daily": "100"}}, 422, '"field":"budget.daily"'),
        ({"value_cpm": "12"}, 422, '"field":"value_cpm"'),
        ({"frequency_caps": [{"max": True, "window": "day"}]}, 422, '"field":"frequency_caps.0.max"'),
        ({"targeting": {"hours": [True, "2"]}}, 422, '"field":"targeting.hours.0"'),
        ({"flight_start": 0}, 422, '"field":"flight_start"'),
        ({"flight_end": "1900000000"}, 422, '"field":"flight_end"'),
        ({"flight_start": "0001-01-01T00:00:00+05:00"}, 422, "flight_start"),
        ({"flight_end": "9999-12-31T23:00:00-05:00"}, 422, "flight_end"),
    ],
)
def test_an_invalid_campaign_is_refused_with_the_reason_and_not_stored(
    local_stack: Any, changes: dict[str, Any], status: int, reason: str
) -> None:
    response = local_stack.invoke("CampaignsFunction", put_event("cmp-invalid", sample_campaign(**changes)))
    assert response["statusCode"] == status
    assert reason in response["body"]
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-invalid"))["statusCode"] == 404


def test_a_malformed_body_is_a_400(local_stack: Any) -> None:
    response = local_stack.invoke("CampaignsFunction", put_event("cmp-x", "{oops"))
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("campaign_id", ["x" * 80, "\u20ac", 'a"b', "a\\b", "\U0001f600"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_path_id_out_of_bounds_is_a_422_naming_it(local_stack: Any, method: str, campaign_id: str) -> None:
    # API Gateway routes any segment to {campaign_id} (rawPath may come percent-decoded): the id's own type refuses
    # it, rather than the router answering "no such route"
    response = local_stack.invoke("CampaignsFunction", get_event(campaign_id, method))
    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"]["details"][0]["field"] == "path.campaign_id"


def test_a_placement_listed_twice_is_stored_once(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None]
) -> None:
    # Given a campaign that names its placement twice
    document = sample_campaign(campaign_id="cmp-twice", placements=["audio_midroll", "audio_preroll", "audio_midroll"])
    # When it is put
    put_campaign(document)
    # Then it is stored with each placement once, in the order given (the catalog indexes it once per placement)
    got = local_stack.invoke("CampaignsFunction", get_event("cmp-twice"))
    assert json.loads(got["body"])["placements"] == ["audio_midroll", "audio_preroll"]


@pytest.mark.parametrize(
    "stored",
    [
        {"document": {"S": json.dumps(sample_campaign(campaign_id="cmp-old-rules", placements=["audio_retired"]))}},
        {},  # no document at all: an item written by hand or by another tool
        {"document": {"N": "1"}},
    ],
)
def test_a_stored_campaign_the_code_cannot_read_is_left_out_of_the_list_not_fatal(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None], stored: dict[str, Any]
) -> None:
    # Given a readable campaign, and a stored item the model refuses (written before a rule tightened, or no
    # campaign document at all)
    put_campaign(sample_campaign(campaign_id="cmp-readable"))
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    table = local_stack.physical_name("CampaignsTable")
    dynamodb.put_item(TableName=table, Item={"campaign_id": {"S": "cmp-old-rules"}, **stored})
    hand_written = ["Imported campaign #7", "Imported " + "x" * 300]  # keys no Identifier is, where a page may end
    for key in hand_written:
        dynamodb.put_item(TableName=table, Item={"campaign_id": {"S": key}})
    try:
        # When the campaigns are listed, a page at a time and a campaign at a time, and the unreadable one is
        # asked for
        ids = listed_ids(local_stack)
        one_by_one = listed_ids(local_stack, limit="1")
        got = local_stack.invoke("CampaignsFunction", get_event("cmp-old-rules"))
    finally:  # the stack is shared: other tests' catalogs must not meet it
        dynamodb.delete_item(TableName=table, Key={"campaign_id": {"S": "cmp-old-rules"}})
        for key in hand_written:
            dynamodb.delete_item(TableName=table, Key={"campaign_id": {"S": key}})
    # Then the list still answers, with every readable campaign and without the unreadable one, and asked for
    # by id it is a 404 that says why, not a 500
    assert "cmp-readable" in ids
    assert "cmp-old-rules" not in ids
    assert one_by_one == ids
    assert got["statusCode"] == 404
    assert "PUT it again" in json.loads(got["body"])["error"]["message"]


def test_a_stored_campaign_of_a_cpm_new_writes_refuse_is_still_served_and_listed(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None]
) -> None:
    # Given a campaign stored before CPMs under one micro-unit an impression were refused on writes
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    stored = json.dumps(sample_campaign(campaign_id="cmp-cheap", value_cpm=0.0005))
    table = local_stack.physical_name("CampaignsTable")
    dynamodb.put_item(TableName=table, Item={"campaign_id": {"S": "cmp-cheap"}, "document": {"S": stored}})
    try:
        # When it is read and listed, and written again as it is
        got = local_stack.invoke("CampaignsFunction", get_event("cmp-cheap"))
        ids = listed_ids(local_stack)
        put = local_stack.invoke(
            "CampaignsFunction", put_event("cmp-cheap", sample_campaign(campaign_id="cmp-cheap", value_cpm=0.0005))
        )
    finally:
        dynamodb.delete_item(TableName=table, Key={"campaign_id": {"S": "cmp-cheap"}})
    # Then the stored one is read and listed as before, and only the new write is refused
    assert got["statusCode"] == 200
    assert "cmp-cheap" in ids
    assert put["statusCode"] == 422
    assert "value_cpm" in put["body"]


def test_the_list_comes_a_page_at_a_time_and_the_pages_hold_every_campaign_once(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None]
) -> None:
    # Given a few campaigns among whatever else the shared stack holds
    mine = {f"cmp-page-{n}" for n in range(5)}
    for campaign_id in mine:
        put_campaign(sample_campaign(campaign_id=campaign_id))
    # When the list is read two at a time, following each page's cursor
    pages = listed_pages(local_stack, limit="2")
    paged = [campaign_id for page in pages for campaign_id in page]
    # Then every page but the last holds two, though the ad id claims beside the campaigns are scanned and skipped
    assert all(len(page) == 2 for page in pages[:-1])
    # and every campaign comes exactly once, as in pages of the largest size
    assert mine <= set(paged)
    assert len(paged) == len(set(paged))
    assert sorted(paged) == sorted(listed_ids(local_stack))


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "51"},
        {"limit": "ten"},
        {"limit": "1_0"},
        {"limit": "5.0"},
        {"limit": "+5"},
        {"limit": "\u0665"},  # an Arabic-Indic 5
        {"cursor": "not-ours!"},
        {"cursor": "Zm9v="},
        {"cursor": "eyJ9"},
        {"cursor": encode_cursor("k" * 2049)},  # passes its check, but no key is so long
    ],
)
def test_a_bad_page_query_is_a_422_naming_the_parameter(local_stack: Any, query: dict[str, str]) -> None:
    response = local_stack.invoke("CampaignsFunction", list_event(**query))
    assert response["statusCode"] == 422, response
    error = json.loads(response["body"])["error"]
    assert error["code"] == "invalid_request"
    assert [detail["field"] for detail in error["details"]] == [f"query.{name}" for name in query]


def test_a_stored_campaign_keeps_its_currency(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a campaign priced in USD (its delivery is counted in micro-dollars)
    put_campaign(sample_campaign(campaign_id="cmp-currency", currency="USD"))
    # When it is PUT again in EUR, it is refused naming the currency it keeps, and nothing changes
    response = local_stack.invoke(
        "CampaignsFunction", put_event("cmp-currency", sample_campaign(campaign_id="cmp-currency", currency="EUR"))
    )
    assert response["statusCode"] == 422
    error = json.loads(response["body"])["error"]
    assert "priced in USD" in error["message"]
    assert error["details"] == [{"field": "currency", "problem": error["message"]}]
    got = local_stack.invoke("CampaignsFunction", get_event("cmp-currency"))
    assert Campaign.model_validate_json(got["body"]).currency == "USD"
    # and `adserve campaigns load` refuses it alike, after writing the campaigns before it
    table = local_stack.physical_name("CampaignsTable")
    before = sample_campaign(campaign_id="cmp-currency-first", currency="SEK")
    put_campaign(before)  # deleted afterwards with the other
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([before, sample_campaign(campaign_id="cmp-currency", currency="EUR")]))
    assert main(["campaigns", "load", str(path), "--table", table]) == 1
    assert "priced in USD" in capsys.readouterr().err
    # while the same currency replaces it as before
    renamed = sample_campaign(campaign_id="cmp-currency", currency="USD", name="Renamed")
    assert local_stack.invoke("CampaignsFunction", put_event("cmp-currency", renamed))["statusCode"] == 200


def test_a_campaign_stored_before_the_currency_attribute_keeps_its_currency_too(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None]
) -> None:
    # Given a campaign stored in USD by a release that wrote no currency attribute
    put_campaign(sample_campaign(campaign_id="cmp-legacy-currency", currency="USD"))
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    dynamodb.update_item(
        TableName=local_stack.physical_name("CampaignsTable"),
        Key={"campaign_id": {"S": "cmp-legacy-currency"}},
        UpdateExpression="REMOVE currency",
    )
    # When it is PUT in SEK, it is refused as a campaign written by this release is
    document = sample_campaign(campaign_id="cmp-legacy-currency", currency="SEK")
    assert local_stack.invoke("CampaignsFunction", put_event("cmp-legacy-currency", document))["statusCode"] == 422
    response = local_stack.invoke("CampaignsFunction", put_event("cmp-legacy-currency", document))
    assert response["statusCode"] == 422, response
    assert "priced in USD" in json.loads(response["body"])["error"]["message"]
    # while in its own currency it is replaced
    document["currency"] = "USD"
    assert local_stack.invoke("CampaignsFunction", put_event("cmp-legacy-currency", document))["statusCode"] == 200


def test_an_ad_id_of_another_campaign_is_refused(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a campaign with its creatives
    first = sample_campaign(campaign_id="cmp-owner")
    put_campaign(first)
    # When another campaign names one of them as its own creative
    taken = first["creatives"][0]["ad_id"]
    other = sample_campaign(campaign_id="cmp-borrower")
    other["creatives"][0]["ad_id"] = taken
    response = local_stack.invoke("CampaignsFunction", put_event("cmp-borrower", other))
    # Then it is refused naming the owner, and nothing is stored
    assert response["statusCode"] == 422
    error = json.loads(response["body"])["error"]
    assert f"{taken} is campaign cmp-owner's" in error["message"]
    assert [detail["field"] for detail in error["details"]] == ["creatives"]
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-borrower"))["statusCode"] == 404
    # and `adserve campaigns load` refuses it alike, with one Scan for the whole file
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([other]))
    assert main(["campaigns", "load", str(path), "--table", local_stack.physical_name("CampaignsTable")]) == 1
    assert f"{taken} is campaign cmp-owner's" in capsys.readouterr().err
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-borrower"))["statusCode"] == 404
    # while the owner may PUT itself again with the same ads
    assert local_stack.invoke("CampaignsFunction", put_event("cmp-owner", first))["statusCode"] == 200


def test_a_campaign_stored_before_campaigns_had_a_currency_is_a_usd_one(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None]
) -> None:
    # Given a campaign document stored with neither the attribute nor a currency in it (it reads as USD)
    document = sample_campaign(campaign_id="cmp-no-currency")
    put_campaign(document)
    stored = {key: value for key, value in document.items() if key != "currency"}
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    dynamodb.put_item(
        TableName=local_stack.physical_name("CampaignsTable"),
        Item={"campaign_id": {"S": "cmp-no-currency"}, "document": {"S": json.dumps(stored)}},
    )
    # Then a PUT in USD replaces it, and one in another currency is refused
    usd, eur = document | {"currency": "USD"}, document | {"currency": "EUR"}
    assert local_stack.invoke("CampaignsFunction", put_event("cmp-no-currency", eur))["statusCode"] == 422
    assert local_stack.invoke("CampaignsFunction", put_event("cmp-no-currency", usd))["statusCode"] == 200


def test_a_campaigns_file_may_move_an_ad_from_one_campaign_to_a_later_one(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None], tmp_path: Path
) -> None:
    # Given a stored campaign holding an ad
    giver = sample_campaign(campaign_id="cmp-giver")
    put_campaign(giver)
    moved = giver["creatives"][0]
    # When a file gives that ad up in the first campaign and books it in a later one
    kept = giver | {"creatives": [{**moved, "ad_id": "cmp-giver-replacement"}]}
    taker = sample_campaign(campaign_id="cmp-taker")
    taker["creatives"] = [moved]
    put_campaign_cleanup = [taker["campaign_id"]]
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([kept, taker]))
    table = local_stack.physical_name("CampaignsTable")
    try:
        # Then both are written
        assert main(["campaigns", "load", str(path), "--table", table]) == 0
        got = local_stack.invoke("CampaignsFunction", get_event("cmp-taker"))
        assert [c["ad_id"] for c in json.loads(got["body"])["creatives"]] == [moved["ad_id"]]
    finally:
        for campaign_id in put_campaign_cleanup:
            local_stack.invoke("CampaignsFunction", get_event(campaign_id, "DELETE"))


def dynamodb_of(local_stack: Any) -> DynamoDBJsonClient:
    return dynamodb_client(endpoint_url=local_stack.endpoint_url)


def delivery_event(campaign_id: str) -> dict[str, Any]:
    event = sample_event("campaigns_get_delivery.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/campaigns/{campaign_id}/delivery"
    event["pathParameters"] = {"campaign_id": campaign_id}
    event["queryStringParameters"], event["rawQueryString"] = None, ""  # the last 24 hours
    return event


def test_a_deleted_campaigns_report_stays_with_what_it_delivered(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a campaign priced in SEK with a budget, that delivered 4 impressions (one clicked)
    document = sample_campaign(
        campaign_id="cmp-deleted-report", currency="SEK", budget={"unit": "spend", "lifetime": 50}
    )
    put_campaign(document)
    hour = hour_of(datetime.now(UTC))
    events = [
        DeliveryEvent(f"seen#d{i}#ad#{kind}", "cmp-deleted-report", hour, DeliveryTotals.of(kind, 20_000))
        for i, kind in [*((i, EventType.IMPRESSION) for i in range(4)), (0, EventType.CLICK)]
    ]
    delivery = DynamoDeliveryStore(dynamodb_of(local_stack), local_stack.physical_name("DeliveryTable"))
    delivery.count_once(DeliveryGroup("cmp-deleted-report", hour, 0, tuple(events), hour + timedelta(days=14)))
    # When it is deleted
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-deleted-report", "DELETE"))["statusCode"] == 204
    # Then it is gone from the admin routes, but its report still answers with what it delivered, in its currency
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-deleted-report"))["statusCode"] == 404
    response = local_stack.invoke("CampaignsFunction", delivery_event("cmp-deleted-report"))
    assert response["statusCode"] == 200, response
    report = json.loads(response["body"])
    assert (report["deleted_at"] is not None, report["not_served"]) == (True, None)  # deleted_at says it
    assert (report["currency"], report["totals"]["impressions"], report["totals"]["clicks"]) == ("SEK", 4, 1)
    assert report["totals"]["spend"] == 0.08
    assert report["budget"]["delivered_lifetime"] == 0.08
    assert (report["pacing_status"], report["serve_probability"]) == (None, None)  # not paced any more
    tables = ["--table", local_stack.physical_name("CampaignsTable")]
    tables += ["--delivery-table", local_stack.physical_name("DeliveryTable")]
    tables += ["--pacing-table", local_stack.physical_name("PacingTable")]
    capsys.readouterr()
    assert main(["delivery", "cmp-deleted-report", *tables]) == 0  # and so does the CLI's
    assert "deleted 20" in capsys.readouterr().out
    # and a campaign created again under the id reports as a live one
    put_campaign(document)
    report = json.loads(local_stack.invoke("CampaignsFunction", delivery_event("cmp-deleted-report"))["body"])
    assert report["deleted_at"] is None
    assert report["totals"]["impressions"] == 4
    # which Decide does not serve: the stack's ExchangeRates (the template's default) has no rate for SEK
    assert report["not_served"]["rule"] == "currency"
    assert "SEK, which has no rate into the ranking currency USD" in report["not_served"]["detail"]


def test_rates_decide_refuses_leave_the_campaigns_routes_working(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None]
) -> None:
    # Given a deployment whose exchange rates Decide refuses (a negative rate), in a fresh execution environment
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXCHANGE_RATES", '{"EUR": -1.08}')
        patch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
        local_stack.reset_function("CampaignsFunction")
        try:
            # When an operator writes, reads and lists campaigns, and reads a report
            put_campaign(sample_campaign(campaign_id="cmp-bad-rates"))
            read = local_stack.invoke("CampaignsFunction", get_event("cmp-bad-rates"))
            listed = local_stack.invoke("CampaignsFunction", list_event())
            with contextlib.redirect_stdout(printed):
                report = local_stack.invoke("CampaignsFunction", delivery_event("cmp-bad-rates"))
        finally:
            local_stack.reset_function("CampaignsFunction")
    # Then the campaigns routes answer, to fix what needs fixing; only the report, which judges by the rates, fails
    assert (read["statusCode"], listed["statusCode"]) == (200, 200)
    assert report["statusCode"] == 500
    assert json.loads(report["body"])["error"]["code"] == "internal_error"
    # and that 500, which Lambda counts as a success, is counted for the function (its errors alarm adds it to
    # Lambda's Errors) and for the version that answered it (the canary's alarm)
    documents = {
        tuple(map(tuple, document["_aws"]["CloudWatchMetrics"][0]["Dimensions"])): document
        for line in printed.getvalue().splitlines()
        if '"UnhandledErrors"' in line and "_aws" in line
        for document in [json.loads(line)]
    }
    assert set(documents) == {(("version", "service"),), (("service",),)}
    # (the service is the function's POWERTOOLS_SERVICE_NAME; one process runs every function here, under the stack's)
    service = local_stack.env["POWERTOOLS_SERVICE_NAME"]
    by_version, by_function = documents[(("version", "service"),)], documents[(("service",),)]
    assert (by_version["service"], by_version["version"], by_version["UnhandledErrors"]) == (service, "7", [1.0])
    assert (by_function["service"], by_function["UnhandledErrors"]) == (service, [1.0])


def test_a_campaign_created_again_under_a_deleted_ones_id_keeps_its_currency(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None], tmp_path: Path
) -> None:
    # Given a campaign priced in USD, deleted (its counters stay, for its report)
    document = sample_campaign(campaign_id="cmp-recreated-currency", currency="USD")
    put_campaign(document)
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-recreated-currency", "DELETE"))["statusCode"] == 204
    # When it is created again in JPY, through the API or the CLI with the delivery table
    yen = {**document, "currency": "JPY"}
    refused = local_stack.invoke("CampaignsFunction", put_event("cmp-recreated-currency", yen))
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([yen]))
    tables = ["--table", local_stack.physical_name("CampaignsTable")]
    tables += ["--delivery-table", local_stack.physical_name("DeliveryTable")]
    loaded = main(["campaigns", "load", str(path), *tables])
    # Then both refuse it, saying why: its counters count in USD; in USD it is created again
    assert refused["statusCode"] == 422
    error = json.loads(refused["body"])["error"]
    assert "deleted with its delivery counted in USD" in error["message"]
    assert [detail["field"] for detail in error["details"]] == ["currency"]
    assert loaded == 1
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-recreated-currency"))["statusCode"] == 404
    put_campaign(document)


def test_a_campaigns_load_whose_delivery_table_cannot_be_read_stops_and_says_so(
    local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([sample_campaign(campaign_id="cmp-load-no-delivery")]))
    tables = ["--table", local_stack.physical_name("CampaignsTable"), "--delivery-table", "adserve-no-such-table"]
    capsys.readouterr()
    assert main(["campaigns", "load", str(path), *tables]) == 1
    assert "the 0 campaigns before it were written" in capsys.readouterr().err
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-load-no-delivery"))["statusCode"] == 404


def stores_of(local_stack: Any) -> tuple[CampaignStore, DynamoDeliveryStore]:
    """The campaigns function's two stores, on the stack's tables."""
    return (
        CampaignStore(dynamodb_of(local_stack), local_stack.physical_name("CampaignsTable")),
        DynamoDeliveryStore(dynamodb_of(local_stack), local_stack.physical_name("DeliveryTable")),
    )


def put_with_a_rename(store: CampaignStore, campaign_id: str, name: str) -> Campaign:
    """Put a campaign named "First"; return the same campaign named *name*, which a race test writes later."""
    first = Campaign.model_validate(sample_campaign(campaign_id=campaign_id, name="First"))
    store.put(first)
    return first.model_copy(update={"name": name})


def test_a_campaign_replaced_while_it_is_deleted_keeps_what_was_deleted(local_stack: Any) -> None:
    # Given a campaign, and a PUT that lands between the delete's read and its write
    store, delivery = stores_of(local_stack)
    replaced = put_with_a_rename(store, "cmp-delete-race", "Replaced")
    handed: list[str] = []

    def keep_racing(campaign: Campaign) -> Any:
        handed.append(campaign.name)
        if len(handed) == 1:
            store.put(replaced)
        return delivery.keeping(DeletedCampaign(campaign, datetime.now(UTC)))

    # When it is deleted
    store.delete("cmp-delete-race", keep=keep_racing)
    # Then the replacement was read again and kept: what is kept is what was deleted
    assert handed == ["First", "Replaced"]
    kept = delivery.deleted_campaign("cmp-delete-race")
    assert kept is not None
    assert kept.campaign == replaced
    with pytest.raises(NotFoundError):
        store.get("cmp-delete-race")


def test_a_delete_that_deleted_nothing_keeps_nothing(local_stack: Any) -> None:
    # Given a delete that read the campaign, and before it writes another delete takes that one away, a PUT
    # creates the campaign again and a third delete takes that one away
    store, delivery = stores_of(local_stack)
    second = put_with_a_rename(store, "cmp-slow-delete", "Second")
    handed: list[str] = []

    def keep_overtaken(campaign: Campaign) -> Any:
        handed.append(campaign.name)
        delete_keeping_report(store, delivery, "cmp-slow-delete", datetime.now(UTC))
        store.put(second)
        delete_keeping_report(store, delivery, "cmp-slow-delete", datetime.now(UTC))
        return delivery.keeping(DeletedCampaign(campaign, datetime.now(UTC)))

    # When the slow delete goes on
    with pytest.raises(NotFoundError):
        store.delete("cmp-slow-delete", keep=keep_overtaken)
    # Then it deleted nothing and kept nothing: the document kept is the last one deleted
    assert handed == ["First"]
    kept = delivery.deleted_campaign("cmp-slow-delete")
    assert kept is not None
    assert kept.campaign == second


def test_a_campaign_deleted_while_it_is_put_in_another_currency_is_not_created_in_that_one(
    local_stack: Any, delete_after: Callable[[str], None]
) -> None:
    # Given a campaign in euros, and a PUT in dollars whose deleted-campaign check is made before a DELETE lands
    delete_after("cmp-put-delete-race")
    store, delivery = stores_of(local_stack)
    euros = Campaign.model_validate(sample_campaign(campaign_id="cmp-put-delete-race", currency="EUR"))
    dollars = euros.model_copy(update={"currency": "USD"})
    store.put(euros)

    class DeletedBetween:
        """The delivery table, a DELETE of the campaign landing right after the PUT's first call to it."""

        def __getattr__(self, name: str) -> Any:
            def call(*args: Any) -> Any:
                answer = getattr(delivery, name)(*args)
                delete_keeping_report(store, delivery, "cmp-put-delete-race", datetime.now(UTC))
                return answer

            return call

    # When the PUT goes on
    with pytest.raises(InvalidInputError) as refused:
        put_keeping_currency(store, DeletedBetween(), dollars)
    # Then it is refused, in the deleted campaign's currency, and nothing is created
    assert "counted in EUR" in str(refused.value)
    with pytest.raises(NotFoundError):
        store.get("cmp-put-delete-race")
    # and one created again in euros is
    put_keeping_currency(store, delivery, euros)
    assert store.get("cmp-put-delete-race") == euros


@pytest.mark.parametrize(("other_currency", "refused"), [("EUR", "is priced in EUR"), ("USD", None)])
def test_a_create_whose_campaign_appeared_meanwhile_is_answered_as_the_replace_it_became(
    local_stack: Any, delete_after: Callable[[str], None], other_currency: str, refused: str | None
) -> None:
    # Given a campaign deleted in euros, and a PUT in dollars that read no campaign, before whose write another
    # writer creates it (in euros through the API; in dollars through a load that was not given the delivery table)
    campaign_id = f"cmp-appeared-{other_currency.lower()}"
    delete_after(campaign_id)
    store, delivery = stores_of(local_stack)
    euros = Campaign.model_validate(sample_campaign(campaign_id=campaign_id, currency="EUR"))
    store.put(euros)
    delete_keeping_report(store, delivery, campaign_id, datetime.now(UTC))
    other = euros.model_copy(update={"name": "Other", "currency": other_currency})
    mine = euros.model_copy(update={"name": "Mine", "currency": "USD"})
    with aws_proxy(local_stack.endpoint_url) as proxy:
        racing = CampaignStore(dynamodb_client(endpoint_url=proxy.url), local_stack.physical_name("CampaignsTable"))

        def other_writer_first() -> None:
            del proxy.observers["TransactWriteItems"]
            store.put(other)

        proxy.observers["TransactWriteItems"] = other_writer_first
        # When the PUT goes on
        if refused is None:
            put_keeping_currency(racing, delivery, mine)
        else:
            with pytest.raises(InvalidInputError) as refusal:
                put_keeping_currency(racing, delivery, mine)
    # Then it is answered as what it became, a replace of the stored campaign: refused for the stored campaign's
    # currency, or written; not refused for a deleted campaign's
    if refused is None:
        assert store.get(campaign_id) == mine
    else:
        assert refused in str(refusal.value)
        assert store.get(campaign_id) == other


def test_a_load_with_a_mistyped_delivery_table_writes_nothing(
    local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], delete_after: Callable[[str], None]
) -> None:
    # Given a stored campaign, a file that replaces it and creates another, and a --delivery-table that is a typo
    delete_after("cmp-load-typo-1")
    delete_after("cmp-load-typo-2")
    store, _ = stores_of(local_stack)
    stored = Campaign.model_validate(sample_campaign(campaign_id="cmp-load-typo-1"))
    store.put(stored)
    path = tmp_path / "campaigns.json"
    renamed = {**stored.model_dump(mode="json"), "name": "Renamed"}
    path.write_text(json.dumps([renamed, sample_campaign(campaign_id="cmp-load-typo-2")]))
    tables = ["--table", local_stack.physical_name("CampaignsTable"), "--delivery-table", "adserve-no-such-table"]
    capsys.readouterr()
    # When it is loaded
    assert main(["campaigns", "load", str(path), *tables]) == 1
    # Then it stops before its first write, blaming the delivery table
    error = capsys.readouterr().err
    assert "the 0 campaigns before it were written" in error
    assert "delivery" in error
    assert "campaigns table" not in error
    assert store.get("cmp-load-typo-1") == stored
    with pytest.raises(NotFoundError):
        store.get("cmp-load-typo-2")


@pytest.fixture
def table_proxy(local_stack: Any) -> Iterator[AwsProxy]:
    """The campaigns function's (and the CLI's) DynamoDB calls go through a proxy for this test; a fresh execution
    environment sees it."""
    with aws_proxy(local_stack.endpoint_url) as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        local_stack.reset_function("CampaignsFunction")
        yield proxy
    local_stack.reset_function("CampaignsFunction")


def assert_unavailable(response: dict[str, Any]) -> None:
    assert response["statusCode"] == 503, response
    assert json.loads(response["body"])["error"]["code"] == "campaigns_unavailable"
    assert response["headers"]["Retry-After"] == "1"


def test_a_throttled_table_answers_each_route_with_a_503_and_a_retry_then_does_it(
    local_stack: Any, table_proxy: AwsProxy
) -> None:
    document = sample_campaign(campaign_id="cmp-throttled")
    # Given a table that throttles every write: the PUT is a 503, not a 500, and writes nothing
    table_proxy.throttle.add("TransactWriteItems")
    assert_unavailable(local_stack.invoke("CampaignsFunction", put_event("cmp-throttled", document)))
    table_proxy.throttle.clear()
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-throttled"))["statusCode"] == 404
    # Then the retry writes it
    assert local_stack.invoke("CampaignsFunction", put_event("cmp-throttled", document))["statusCode"] == 200
    try:
        # And reads that are throttled are 503s too
        table_proxy.throttle.add("GetItem")
        assert_unavailable(local_stack.invoke("CampaignsFunction", get_event("cmp-throttled")))
        table_proxy.throttle = {"Scan"}
        assert_unavailable(local_stack.invoke("CampaignsFunction", list_event(limit="2")))
        # And a throttled delete deletes nothing: the campaign is still there to read
        table_proxy.throttle = {"TransactWriteItems"}
        assert_unavailable(local_stack.invoke("CampaignsFunction", get_event("cmp-throttled", "DELETE")))
        table_proxy.throttle.clear()
        got = local_stack.invoke("CampaignsFunction", get_event("cmp-throttled"))
        assert Campaign.model_validate_json(got["body"]) == Campaign.model_validate(document)
    finally:
        table_proxy.throttle.clear()
        assert local_stack.invoke("CampaignsFunction", get_event("cmp-throttled", "DELETE"))["statusCode"] == 204


def test_a_campaigns_load_into_a_throttled_table_stops_and_says_what_it_wrote(
    local_stack: Any, table_proxy: AwsProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file of two campaigns and a table that throttles writes after the first
    first, second = (sample_campaign(campaign_id=f"cmp-load-throttled-{n}") for n in (1, 2))
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([first, second]))
    table_proxy.throttle_after["TransactWriteItems"] = 1
    try:
        # When it is loaded, Then it stops with the table's answer, saying the one before was written
        assert main(["campaigns", "load", str(path), "--table", local_stack.physical_name("CampaignsTable")]) == 1
        error = capsys.readouterr().err
        assert "ProvisionedThroughputExceededException" in error, error
        assert "the 1 campaigns before it were written, none after" in error
        table_proxy.throttle_after.clear()
        assert local_stack.invoke("CampaignsFunction", get_event(first["campaign_id"]))["statusCode"] == 200
        assert local_stack.invoke("CampaignsFunction", get_event(second["campaign_id"]))["statusCode"] == 404
        # And a list of a throttled table says so too, without a traceback
        table_proxy.throttle.add("Scan")
        assert main(["campaigns", "list", "--table", local_stack.physical_name("CampaignsTable")]) == 1
        assert capsys.readouterr().err.startswith("adserve: campaigns table: ProvisionedThroughputExceededException")
    finally:
        table_proxy.throttle_after.clear()
        table_proxy.throttle.clear()
        for document in (first, second):
            local_stack.invoke("CampaignsFunction", get_event(document["campaign_id"], "DELETE"))


def test_the_cli_lists_each_campaigns_cpm_in_its_currency_to_the_micro_unit(
    local_stack: Any, put_campaign: Callable[[dict[str, Any]], None], capsys: pytest.CaptureFixture[str]
) -> None:
    # A CPM of 1000 JPY is not 1000 USD, and one of 0.001 (the least a write takes) is not 0.00
    put_campaign(sample_campaign(campaign_id="cmp-list-yen", currency="JPY", value_cpm=1000))
    put_campaign(sample_campaign(campaign_id="cmp-list-tiny", value_cpm=0.001))
    assert main(["campaigns", "list", "--table", local_stack.physical_name("CampaignsTable")]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "  1000 JPY  " in rows["cmp-list-yen"]
    assert "  0.001 USD  " in rows["cmp-list-tiny"]


def swollen(campaign_id: str, url_bytes: int, **creative_fields: Any) -> dict[str, Any]:
    """A campaign of 20 creatives whose URLs each hold *url_bytes* of ``<``: stored percent-encoded, three times
    those bytes each."""
    document = sample_campaign(campaign_id=campaign_id)
    creative = document["creatives"][0]
    url = "https://example.com/" + "<" * url_bytes
    document["creatives"] = [
        {**creative, "ad_id": f"{campaign_id}-{n}", "click_url": url, **creative_fields} for n in range(20)
    ]
    return document


def test_a_campaign_over_64_kib_as_stored_is_refused_though_its_body_is_under(local_stack: Any) -> None:
    # Given a PUT body under 64 KiB whose URLs are stored percent-encoded, each '<' as '%3C'
    document = swollen("cmp-swollen", 1500)
    body = json.dumps(document)
    assert len(body.encode()) < 64 * 1024
    # When it is put, Then it is a 422 that says why, and nothing is stored
    response = local_stack.invoke("CampaignsFunction", put_event("cmp-swollen", body))
    assert response["statusCode"] == 422, response
    assert "bytes as stored" in json.loads(response["body"])["error"]["message"]
    assert local_stack.invoke("CampaignsFunction", get_event("cmp-swollen"))["statusCode"] == 404


def escaped(campaign: Campaign) -> int:
    """The campaign's bytes as a response carries it, JSON-escaped (``ensure_ascii``, as the router writes)."""
    return len(json.dumps(campaign.model_dump_json()))


def test_a_page_ends_before_its_documents_pass_the_byte_budget_as_the_response_carries_them(local_stack: Any) -> None:
    # Given three campaigns of about 125 KB each as stored (as documents stored before the limit on PUT may be),
    # their titles emoji that a response escapes to three times their stored bytes
    store = CampaignStore(dynamodb_of(local_stack), local_stack.physical_name("CampaignsTable"))
    large = [Campaign.model_validate(swollen(f"cmp-page-bytes-{n}", 1800, title="\U0001f600" * 200)) for n in range(3)]
    # each followed by a small one (a Scan may read items in the order they were written)
    small = [Campaign.model_validate(sample_campaign(campaign_id=f"cmp-page-small-{n}")) for n in range(3)]
    stored = [campaign for pair in zip(large, small, strict=True) for campaign in pair]
    for campaign in stored:
        store.put(campaign)
    try:
        # When the table is listed a page at a time with a budget of 150 KB
        pages, cursor = [], None
        while True:
            page, cursor = store.page(50, cursor, max_bytes=150_000)
            pages.append(page)
            if cursor is None:
                break
        # Then no page of more than one campaign holds more, escaped, and every campaign is on one page
        for page in pages:
            assert len(page) == 1 or sum(escaped(c) for c in page) <= 150_000
        listed = [c.campaign_id for page in pages for c in page]
        assert [listed.count(c.campaign_id) for c in stored] == [1] * 6
        assert all(len(c.model_dump_json().encode()) < 150_000 < escaped(c) for c in large)
    finally:
        for campaign in stored:
            store.delete(campaign.campaign_id)
