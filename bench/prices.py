"""AWS list prices (us-east-1, on-demand) that the cost model uses: the one place they are written down.

Each price says where it was read and when. ``assumption=True`` marks a price no page retrieved for this file
stated: it is AWS's long-standing list price as we know it, and the figures that use it say so. Prices
change; re-check the sources before relying on a figure.
"""

from dataclasses import dataclass

RETRIEVED = "2026-12-02"
"""When the sources below were read."""

MONTH_SECONDS = 30 * 24 * 3600
"""A 30-day month, the unit monthly prices (and the model's monthly volumes) use."""


@dataclass(frozen=True)
class Price:
    usd: float
    """Per ``unit``; the first tier's when there are tiers."""
    unit: str
    source: str
    assumption: bool = False
    tiers: tuple[tuple[float, float], ...] = ()
    """Further tiers, ascending: ``(from this many units a month on, usd per unit)``."""

    def monthly(self, units: float) -> float:
        """Dollars for *units* in a month, each tier's units at that tier's price."""
        steps = ((0.0, self.usd), *self.tiers)
        cost = 0.0
        for index, (start, usd) in enumerate(steps):
            end = steps[index + 1][0] if index + 1 < len(steps) else float("inf")
            cost += max(0.0, min(units, end) - start) * usd
        return cost


LAMBDA_PRICING = (
    "https://aws.amazon.com/lambda/pricing/ (x86 tiers quoted by https://cloudchipr.com/blog/aws-lambda-pricing)"
)
PRICES: dict[str, Price] = {
    "api_gateway_http_request": Price(
        1.00e-6,
        "HTTP API request (512 KB metering units)",
        "https://docs.aws.amazon.com/whitepapers/latest/best-practices-api-gateway-private-apis-integration/"
        "cost-optimization.html: $1.00 per million for the first 300 million a month, $0.90 after",
        tiers=((300e6, 0.90e-6),),
    ),
    "data_transfer_out_gb": Price(
        0.09,
        "GB to the internet (first 10 TB a month)",
        "https://www.apigatewaycost.com/aws: $0.09/GB outbound from API Gateway",
    ),
    "lambda_request": Price(0.20e-6, "invocation", LAMBDA_PRICING + ": $0.20 per million requests", assumption=True),
    "lambda_gb_second": Price(
        0.0000166667, "GB-second, x86 (first 6 billion GB-s a month)", LAMBDA_PRICING + ": $0.0000166667 per GB-s"
    ),
    "snapstart_cache_gb_second": Price(
        0.0000015046,
        "GB-second a SnapStart snapshot is cached (per published version, Python/.NET)",
        "https://awsnegotiations.com/blog/lambda-snapstart-cost-impact/, quoting AWS's pricing page",
    ),
    "snapstart_restore_gb": Price(
        0.0001397998,
        "GB restored (memory size x each restore, Python/.NET)",
        "https://awsnegotiations.com/blog/lambda-snapstart-cost-impact/, quoting AWS's pricing page (it words the "
        "unit as GB-second of restore; AWS bills it per GB restored)",
    ),
    "dynamodb_read_request_unit": Price(
        0.125e-6,
        "on-demand read request unit (4 KB strongly consistent, 2 eventually consistent reads)",
        "https://airbyte.com/data-engineering-resources/dynamodb-pricing: $0.125 per million after the November "
        "2024 cut",
    ),
    "dynamodb_write_request_unit": Price(
        0.625e-6,
        "on-demand write request unit (1 KB; a transactional write takes 2)",
        "https://airbyte.com/data-engineering-resources/dynamodb-pricing: $0.625 per million after the November "
        "2024 cut",
    ),
    "sqs_request": Price(
        0.40e-6,
        "standard queue request, per 64 KiB chunk of its payload",
        "https://unanswered.io/guide/aws-sqs-pricing-and-cost-optimization: $0.40 per million (first 100 billion a "
        "month), each 64 KB chunk billed as one request",
    ),
    "dynamodb_storage_gb_month": Price(
        0.25,
        "GB-month of DynamoDB Standard table storage (the first 25 GB free, not counted here)",
        "AWS's long-standing list price; not read from a page retrieved for this file",
        assumption=True,
    ),
    "dynamodb_pitr_gb_month": Price(
        0.20,
        "GB-month of DynamoDB continuous backups (point-in-time recovery), by table size",
        "AWS's long-standing list price; not read from a page retrieved for this file",
        assumption=True,
    ),
    "s3_get": Price(
        0.0004e-3,
        "S3 Standard GET",
        "https://c3x.dev/blog/s3-request-fees-explained: GET, HEAD, SELECT $0.0004 per 1,000",
    ),
    "s3_list": Price(
        0.005e-3,
        "S3 Standard LIST (priced as a PUT)",
        "https://c3x.dev/blog/s3-request-fees-explained: PUT, COPY, POST, LIST $0.005 per 1,000",
    ),
    "s3_put": Price(
        0.005e-3,
        "S3 Standard PUT",
        "https://devnotes.tech/understanding-aws-s3-pricing-a-complete-cost-breakdown-with-examples: $0.005 per 1,000",
    ),
    "s3_storage_gb_month": Price(
        0.023,
        "S3 Standard GB-month (first 50 TB)",
        "https://devnotes.tech/understanding-aws-s3-pricing-a-complete-cost-breakdown-with-examples: $0.023 per GB",
    ),
    "cloudwatch_logs_ingested_gb": Price(
        0.50,
        "GB of logs ingested (standard class)",
        "https://www.factualminds.com/blog/amazon-cloudwatch-pricing-metrics-logs-alarms-dashboards/: $0.50/GB",
    ),
    "cloudwatch_logs_stored_gb_month": Price(
        0.03, "GB-month of logs stored", "https://aws.amazon.com/cloudwatch/pricing/ (not in the excerpt read)", True
    ),
    "cloudwatch_metric_month": Price(
        0.30,
        "custom metric (name x dimensions) a month, first 10,000",
        "https://cal53.calculator.city/cloudwatch-custom-metrics-calculator/: $0.30 per metric-month",
    ),
    "cloudwatch_alarm_metric_month": Price(
        0.10,
        "standard-resolution alarm metric a month (an alarm on metric math pays for each metric it reads)",
        "https://c3x.dev/resources/aws/aws_cloudwatch_metric_alarm: $0.10 per alarm-month; per metric read: AWS's "
        "pricing page ('per alarm metric'), not retrieved here",
        assumption=True,
    ),
    "xray_trace_recorded": Price(
        5.00e-6, "trace recorded", "https://aws.amazon.com/de/xray/pricing/: $5 per million after 100,000 free"
    ),
    "secrets_manager_api_call": Price(
        0.05e-4,
        "API call",
        "https://hivebook.wiki/wiki/aws-secrets-manager-rotated-secrets-dynamic-db-credentials-kms: $0.05 per 10,000",
    ),
    "secrets_manager_secret_month": Price(
        0.40,
        "secret a month",
        "https://hivebook.wiki/wiki/aws-secrets-manager-rotated-secrets-dynamic-db-credentials-kms: $0.40",
    ),
}
