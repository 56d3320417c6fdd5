"""Campaign admin API and the OpenAPI document. Parses, calls the store, shapes the response."""

from datetime import UTC, datetime, timedelta
from functools import cache
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Any

from adserve.campaigns.api import MAX_PAGE, MAX_PAGE_BYTES, CampaignListResponse, decode_cursor, encode_cursor
from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import Campaign, CampaignInput
from adserve.core.errors import InvalidInputError
from adserve.core.identifiers import Identifier
from adserve.core.observability import MetricName, logger, metrics, tracer
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.pacing_store import DynamoPacingStore
from adserve.delivery.report import (
    DeliveryReport,
    Granularity,
    campaign_report,
    delete_keeping_report,
    parse_hour,
    put_keeping_currency,
    requested_range,
)
from adserve.http_api.errors import body_refusals, error_doc, install_error_handlers
from adserve.http_api.gateway import correlate_request, screen_body
from adserve.http_api.router import JSON_CONTENT, DecimalDigits, Path, Query, Response, Router
from adserve.wiring.campaigns import campaign_store, delivery_store, pacing_store
from adserve.wiring.settings import CampaignsSettings, RankingCurrencySettings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, StringConstraints

app = Router()
install_error_handlers(app)

CampaignId = Annotated[Identifier, Path(description="The campaign's id")]
Hour = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}$")]
PageSize = Annotated[int, DecimalDigits, Field(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=2800)]
"""A page's next_cursor: the id of the page's last campaign and its check, in base64; room for a key of DynamoDB's
2,048 bytes at most, which ``decode_cursor`` holds it to."""
UNREACHABLE = error_doc("The campaigns table was throttled or unreachable; retry after Retry-After seconds")


@cache
def settings() -> CampaignsSettings:
    return CampaignsSettings.from_env()


@cache
def rates() -> ExchangeRates:
    """Decide's rates, for the report's ``not_served`` only: read on the report's first call, so that rates Decide
    refuses (a ConfigurationError, a 500 there) leave the campaigns routes working, to fix what needs fixing."""
    return RankingCurrencySettings.from_env().rates


@cache
def store() -> CampaignStore:
    return campaign_store(settings().campaigns_table_name)


@cache
def delivery() -> DynamoDeliveryStore:
    return delivery_store(settings().delivery_table_name)


@cache
def pacing() -> DynamoPacingStore:
    return pacing_store(settings().pacing_table_name)


@app.put(
    "/v1/campaigns/<campaign_id>",
    summary="Create or replace a campaign",
    responses={
        200: {"description": "The campaign as stored"},
        **body_refusals(),
        409: error_doc("The campaign was written by others again and again while it was being written; retry"),
        422: error_doc(
            "Invalid campaign, its campaign_id differs from the path's, an ad id is another's, or its currency is not"
            " the stored (or deleted) campaign's of that id"
        ),
        503: error_doc(
            "The campaigns table, or the delivery table a deleted campaign's currency is read from, was throttled or"
            " unreachable; retry after Retry-After seconds"
        ),
    },
)
@tracer.capture_method
def put_campaign(campaign_id: CampaignId, campaign: CampaignInput) -> Campaign:
    if campaign.campaign_id != campaign_id:
        raise InvalidInputError("campaign_id in the body must equal the one in the path", field="campaign_id")
    put_keeping_currency(store(), delivery(), campaign)
    metrics.add_metric(MetricName.CAMPAIGNS_WRITTEN, MetricUnit.Count, 1)
    return campaign


@app.get(
    "/v1/campaigns/<campaign_id>",
    summary="Read a campaign",
    responses={
        200: {"description": "The campaign"},
        404: error_doc("No such campaign"),
        503: UNREACHABLE,
        **body_refusals(takes_body=False),
    },
)
@tracer.capture_method
def get_campaign(campaign_id: CampaignId) -> Campaign:
    return store().get(campaign_id)


@app.delete(
    "/v1/campaigns/<campaign_id>",
    summary="Delete a campaign; its delivery report stays readable",
    status_code=HTTPStatus.NO_CONTENT,
    responses={
        204: {"description": "Deleted; its last document is kept with its delivery"},
        404: error_doc("No such campaign"),
        409: error_doc("The campaign was replaced again and again while it was being deleted; retry"),
        503: error_doc("Its document could not be kept, or the campaigns table was unreachable; retry"),
        **body_refusals(takes_body=False),
    },
)
@tracer.capture_method
def delete_campaign(campaign_id: CampaignId) -> Response:
    delete_keeping_report(store(), delivery(), campaign_id, datetime.now(UTC))
    return Response(status_code=HTTPStatus.NO_CONTENT)


@app.get(
    "/v1/campaigns",
    summary="List the campaigns, a page at a time",
    responses={
        200: {"description": "A page of campaigns and the cursor of the next"},
        503: UNREACHABLE,
        **body_refusals(takes_body=False),
    },
)
@tracer.capture_method
def list_campaigns(
    limit: Annotated[PageSize, Query(description=f"Campaigns per page, 1-{MAX_PAGE}.")] = MAX_PAGE,
    cursor: Annotated[Cursor | None, Query(description="The previous page's next_cursor.")] = None,
) -> CampaignListResponse:
    after = None if cursor is None else decode_cursor(cursor)
    campaigns, last = store().page(limit, after, max_bytes=MAX_PAGE_BYTES)
    return CampaignListResponse(campaigns=campaigns, next_cursor=None if last is None else encode_cursor(last))


@app.get(
    "/v1/campaigns/<campaign_id>/delivery",
    summary="A campaign's delivery, budget left and pacing status (a deleted campaign's too)",
    responses={
        200: {"description": "The report; deleted_at is set for a deleted campaign"},
        404: error_doc("No such campaign, now or ever deleted"),
        503: error_doc("The campaign or its delivery counters could not be read; retry"),
        **body_refusals(takes_body=False),
    },
)
@tracer.capture_method
def campaign_delivery(
    campaign_id: CampaignId,
    first: Annotated[Hour | None, Query(alias="from", description="First UTC hour, e.g. 2026-11-25T00.")] = None,
    last: Annotated[Hour | None, Query(alias="to", description="Last UTC hour; the current one if absent.")] = None,
    granularity: Annotated[Granularity, Query(description="One row per hour (up to 7 days) or day (92).")] = (
        Granularity.HOUR
    ),
) -> DeliveryReport:
    now = datetime.now(UTC)
    start, end = requested_range(
        parse_hour(first, "from") if first else None, parse_hour(last, "to") if last else None, granularity, now
    )
    max_age = timedelta(seconds=settings().pacing_max_age_seconds)
    return campaign_report(
        store(),
        delivery(),
        pacing(),
        campaign_id,
        start,
        end,
        granularity,
        now,
        pacing_max_age=max_age,
        rates=rates(),
    )


@app.get("/v1/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi_document() -> Response:
    return Response(
        status_code=HTTPStatus.OK,
        content_type=JSON_CONTENT,
        body=resources.files("adserve").joinpath("openapi.json").read_text(),
    )


@logger.inject_lambda_context
@correlate_request
@metrics.log_metrics
@tracer.capture_lambda_handler
@screen_body
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
