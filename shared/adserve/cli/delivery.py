"""``adserve delivery CAMPAIGN_ID``: the delivery report as a table, optionally plotted against the target.

    adserve delivery cmp-1 [--from 2026-11-25T00] [--to 2026-11-25T23] [--granularity hour|day]
                           [--plot delivery.png] [--table NAME] [--delivery-table NAME] [--pacing-table NAME]

Reads the same counters as ``GET /v1/campaigns/{id}/delivery``, through the same ``campaign_report``. With the
deployment's ``RANKING_CURRENCY`` / ``EXCHANGE_RATES`` set, it also says when Decide cannot rank the campaign.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import MICROS_PER_UNIT, BudgetUnit
from adserve.cli.arguments import identifier
from adserve.core.errors import (
    CampaignStoreUnavailableError,
    ConfigurationError,
    DeliveryStoreUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from adserve.dal.aws_clients import AWS_ERRORS
from adserve.delivery.pacing import PACING_MAX_AGE, PacingState, TrafficProfile, day_start, delivered
from adserve.delivery.report import DeliveryReport, Granularity, campaign_report, requested_range
from adserve.wiring.campaigns import campaign_store, delivery_store, pacing_store
from adserve.wiring.settings import PacingMaxAgeSeconds, RankingCurrencySettings

CAMPAIGNS_VARIABLE = "CAMPAIGNS_TABLE_NAME"
DELIVERY_VARIABLE = "DELIVERY_TABLE_NAME"
PACING_VARIABLE = "PACING_TABLE_NAME"
PACING_MAX_AGE_VARIABLE = "PACING_MAX_AGE_SECONDS"
RATES_VARIABLES = frozenset({"RANKING_CURRENCY", "EXCHANGE_RATES"})


_MAX_AGE_SECONDS: TypeAdapter[float] = TypeAdapter(PacingMaxAgeSeconds)


def pacing_max_age(seconds: str | None) -> timedelta:
    """``PACING_MAX_AGE_SECONDS`` as the functions validate it (Decide serves a pacing state this long, and the report
    says so); unset, their default, the pacing step's own."""
    if seconds is None:
        return PACING_MAX_AGE
    try:
        return timedelta(seconds=_MAX_AGE_SECONDS.validate_python(seconds))
    except ValidationError as error:
        raise InvalidInputError(
            f"{PACING_MAX_AGE_VARIABLE}: {error.errors()[0]['msg']}", field=PACING_MAX_AGE_VARIABLE
        ) from None


def deployment_rates(environment: Mapping[str, str]) -> ExchangeRates | None:
    """The rates of ``RANKING_CURRENCY`` and ``EXCHANGE_RATES`` as Decide validates them, for the report to say which
    campaigns it cannot rank; None when neither is set (the currency is then not judged: the CLI does not know the
    deployment's parameters unless told)."""
    if not RATES_VARIABLES & environment.keys():
        return None
    try:
        return RankingCurrencySettings.from_env(environment).rates
    except ConfigurationError as error:
        raise InvalidInputError(str(error), field="EXCHANGE_RATES") from None


def add_delivery_command(groups: argparse._SubParsersAction[Any], hour: Callable[[str], datetime]) -> None:
    command = groups.add_parser("delivery", help="a campaign's delivery, budget left and pacing status")
    command.add_argument("campaign_id", type=identifier("campaign"))
    command.add_argument("--from", dest="start", type=hour, help="first hour, UTC (default: 24 hours / 30 days ago)")
    command.add_argument("--to", dest="end", type=hour, help="last hour, UTC, included (default: now)")
    command.add_argument("--granularity", choices=[g.value for g in Granularity], default=Granularity.HOUR.value)
    command.add_argument(
        "--plot", type=Path, help="write a PNG of today's cumulative delivery against the pacing step's target curve"
    )
    command.add_argument("--table", help=f"campaigns table (default: ${CAMPAIGNS_VARIABLE})")
    command.add_argument("--delivery-table", help=f"delivery table (default: ${DELIVERY_VARIABLE})")
    command.add_argument("--pacing-table", help=f"pacing table (default: ${PACING_VARIABLE})")


def run_delivery_command(arguments: argparse.Namespace) -> int:
    table = arguments.table or os.environ.get(CAMPAIGNS_VARIABLE)
    counters = arguments.delivery_table or os.environ.get(DELIVERY_VARIABLE)
    states = arguments.pacing_table or os.environ.get(PACING_VARIABLE)
    if not table or not counters or not states:
        message = (
            "adserve: pass --table, --delivery-table and --pacing-table"
            f" or set {CAMPAIGNS_VARIABLE}, {DELIVERY_VARIABLE}, {PACING_VARIABLE}"
        )
        print(message, file=sys.stderr)  # noqa: T201
        return 2
    if arguments.plot is not None and arguments.plot.is_dir():
        print(f"adserve: --plot names a file to write, and {arguments.plot} is a directory", file=sys.stderr)  # noqa: T201
        return 2
    granularity = Granularity(arguments.granularity)
    now = datetime.now(UTC)
    try:
        start, end = requested_range(arguments.start, arguments.end, granularity, now)
        max_age = pacing_max_age(os.environ.get(PACING_MAX_AGE_VARIABLE))
        reader = delivery_store(counters)
        report = campaign_report(
            campaign_store(table),
            reader,
            pacing_store(states),
            arguments.campaign_id,
            start,
            end,
            granularity,
            now,
            pacing_max_age=max_age,
            rates=deployment_rates(os.environ),
        )
        today = reader.hourly(report.campaign_id, day_start(now), now)
    except (NotFoundError, InvalidInputError, DeliveryStoreUnavailableError, CampaignStoreUnavailableError) as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1
    except AWS_ERRORS as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1
    print(format_report(report))  # noqa: T201
    if arguments.plot:
        unit = report.budget.unit if report.budget is not None else BudgetUnit.IMPRESSIONS
        scale = MICROS_PER_UNIT if unit is BudgetUnit.SPEND else 1
        hourly = {hour: delivered(totals, unit) / scale for hour, totals in today.items()}
        try:
            plot_today(report.campaign_id, hourly, report.pacing_state, now, scale, arguments.plot)
        except OSError as error:
            print(f"adserve: the plot was not written: {error}", file=sys.stderr)  # noqa: T201
            return 1
        print(f"plot written to {arguments.plot}")  # noqa: T201
    return 0


def format_report(report: DeliveryReport) -> str:
    step = "%Y-%m-%dT%H" if report.granularity is Granularity.HOUR else "%Y-%m-%d"
    header = f"{'START':<13}  {'IMPR':>9}  {'CLICKS':>7}  {'COMPL':>7}  {'SKIPS':>7}  {'CTR':>6}  {'COMPL%':>6}  SPEND"
    lines = [header]
    for row in [*report.rows, None]:
        counts = row or report.totals
        label = row.start.strftime(step) if row else "total"
        ctr = f"{counts.ctr:.2%}" if counts.ctr is not None else "-"
        rate = f"{counts.completion_rate:.0%}" if counts.completion_rate is not None else "-"
        lines.append(
            f"{label:<13}  {counts.impressions:>9}  {counts.clicks:>7}  {counts.completions:>7}  {counts.skips:>7}"
            f"  {ctr:>6}  {rate:>6}  {counts.spend:g} {report.currency}"
        )
    budget = report.budget
    if budget is None:
        lines.append(f"no budget; pacing {report.pacing.value}")
    else:
        unit = "impressions" if budget.unit is BudgetUnit.IMPRESSIONS else report.currency
        amounts = [
            f"{period} {amount} left {left}"
            for period, amount, left in (
                ("lifetime", budget.lifetime, budget.lifetime_left),
                ("daily", budget.daily, budget.daily_left),
            )
            if amount is not None
        ]
        status = (
            report.pacing_status.value
            if report.pacing_status is not None
            else "none (not paced)"
            if report.deleted_at is not None or report.not_served is not None
            else "not judged yet"
        )
        lines.append(f"budget ({unit}): {'; '.join(amounts)}; pacing {report.pacing.value}, status {status}")
    if report.deleted_at is not None:
        lines.append(f"deleted {report.deleted_at.isoformat()}: delivered until then, not paced since")
    elif report.not_served is not None:
        lines.append(f"not served ({report.not_served.rule.value}): {report.not_served.detail}; serve probability 0")
    elif budget is None:
        lines.append("serve probability: 1 (no budget: never throttled)")
    else:
        unjudged = "not set (the pacing step has not judged it)"
        probability = unjudged if report.serve_probability is None else report.serve_probability
        lines.append(f"serve probability: {probability}")
    return "\n".join(lines)


def target_curve(state: PacingState, hours: list[float]) -> list[float]:
    """The pacing step's target at each hour of its UTC day (0 to 24): the day's goal x the traffic share past."""
    profile = TrafficProfile(tuple(state.hourly_shares))
    start = day_start(state.updated_at)
    return [
        state.goal_today * (1.0 if hour >= 24 else profile.elapsed(start + timedelta(hours=hour))) for hour in hours
    ]


def plot_today(  # noqa: PLR0917 - a plot of these
    campaign_id: str, hourly: dict[datetime, float], state: PacingState | None, now: datetime, scale: int, path: Path
) -> None:
    """Today's cumulative delivery (hour by hour) and, once the pacing step ran, its traffic-shaped target.

    The state's amounts are in the budget's integer units: *scale* (micro-units per unit) converts spend.
    """
    import matplotlib  # noqa: PLC0415 - a dev dependency, loaded only for --plot

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    start = day_start(now)
    ends = [start + timedelta(hours=hour + 1) for hour in range(now.hour + 1)]
    cumulative, total = [], 0.0
    for end in ends:
        total += hourly.get(end - timedelta(hours=1), 0.0)
        cumulative.append(total)
    figure, axes = pyplot.subplots(figsize=(9, 4.5))
    axes.step([float(hour + 1) for hour in range(len(ends))], cumulative, where="post", label="delivered (cumulative)")
    if state is not None and state.day == now.date():
        grid = [index / 4 for index in range(97)]
        axes.plot(grid, [value / scale for value in target_curve(state, grid)], "--", label="target (traffic-shaped)")
    axes.set_xlabel("hour of the UTC day")
    axes.set_title(f"{campaign_id}: delivery on {start:%Y-%m-%d} against the pacing target")
    axes.legend()
    # At *path* as given: without a format, matplotlib added ".png" to a name with no suffix
    figure.savefig(path, dpi=100, format="png")
    pyplot.close(figure)
