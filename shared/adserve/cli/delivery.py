"""``adserve delivery CAMPAIGN_ID``: the delivery report as a table, optionally plotted against the target.

    adserve delivery cmp-1 [--from 2026-11-25T00] [--to 2026-11-25T23] [--granularity hour|day]
                           [--plot delivery.png] [--table NAME] [--delivery-table NAME]

Reads the same counters as ``GET /v1/campaigns/{id}/delivery``, through the same ``build_report``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adserve.campaigns.model import BudgetUnit
from adserve.core.errors import DeliveryStoreUnavailableError, InvalidInputError, NotFoundError
from adserve.dal.aws_clients import AWS_ERRORS
from adserve.delivery.report import DeliveryReport, Granularity, build_report, even_target
from adserve.wiring.campaigns import campaign_store, delivery_store

CAMPAIGNS_VARIABLE = "CAMPAIGNS_TABLE_NAME"
DELIVERY_VARIABLE = "DELIVERY_TABLE_NAME"
DEFAULT_SPAN = {Granularity.HOUR: timedelta(hours=23), Granularity.DAY: timedelta(days=29)}


def add_delivery_command(groups: argparse._SubParsersAction[Any], hour: Callable[[str], datetime]) -> None:
    command = groups.add_parser("delivery", help="a campaign's delivery, budget left and pacing status")
    command.add_argument("campaign_id")
    command.add_argument("--from", dest="start", type=hour, help="first hour, UTC (default: 24 hours / 30 days ago)")
    command.add_argument("--to", dest="end", type=hour, help="last hour, UTC, included (default: now)")
    command.add_argument("--granularity", choices=[g.value for g in Granularity], default=Granularity.HOUR.value)
    command.add_argument("--plot", type=Path, help="write a PNG of cumulative delivery against the even-pace target")
    command.add_argument("--table", help=f"campaigns table (default: ${CAMPAIGNS_VARIABLE})")
    command.add_argument("--delivery-table", help=f"delivery table (default: ${DELIVERY_VARIABLE})")


def run_delivery_command(arguments: argparse.Namespace) -> int:
    table = arguments.table or os.environ.get(CAMPAIGNS_VARIABLE)
    counters = arguments.delivery_table or os.environ.get(DELIVERY_VARIABLE)
    if not table or not counters:
        message = f"adserve: pass --table and --delivery-table or set {CAMPAIGNS_VARIABLE}, {DELIVERY_VARIABLE}"
        print(message, file=sys.stderr)  # noqa: T201
        return 2
    granularity = Granularity(arguments.granularity)
    now = datetime.now(UTC)
    end = arguments.end or now
    start = arguments.start or end - DEFAULT_SPAN[granularity]
    try:
        campaign = campaign_store(table).get(arguments.campaign_id)
        report = build_report(campaign, delivery_store(counters), start, end, granularity, now)
    except (NotFoundError, InvalidInputError, DeliveryStoreUnavailableError) as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1
    except AWS_ERRORS as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1
    print(format_report(report))  # noqa: T201
    if arguments.plot:
        lifetime = campaign.budget.lifetime if campaign.budget else None
        plot_report(report, arguments.plot, lifetime, (campaign.flight_start, campaign.flight_end))
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
            f"  {ctr:>6}  {rate:>6}  {counts.spend:.2f} {report.currency}"
        )
    budget = report.budget
    if budget is None:
        lines.append(f"no budget; pacing {report.pacing.value}")
    else:
        unit = "impressions" if budget.unit is BudgetUnit.IMPRESSIONS else report.currency
        lines.append(
            f"budget ({unit}): lifetime {budget.lifetime} left {budget.lifetime_left}; daily {budget.daily} left"
            f" {budget.daily_left}; pacing {report.pacing.value}, status {report.pacing_status}"
        )
    probability = "not set (no pacing step yet)" if report.serve_probability is None else report.serve_probability
    lines.append(f"serve probability: {probability}")
    return "\n".join(lines)


def plot_report(report: DeliveryReport, path: Path, lifetime: float | None, flight: tuple[datetime, datetime]) -> None:
    """Cumulative delivery over the range (in the budget's unit, impressions without one) and the even target."""
    import matplotlib  # noqa: PLC0415 - a dev dependency, loaded only for --plot

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415
    from matplotlib.dates import date2num  # noqa: PLC0415

    spend = report.budget is not None and report.budget.unit is BudgetUnit.SPEND
    ends = [
        row.start + (timedelta(hours=1) if report.granularity is Granularity.HOUR else timedelta(days=1))
        for row in report.rows
    ]
    cumulative, total = [], 0.0
    for row in report.rows:
        total += row.spend if spend else row.impressions
        cumulative.append(total)
    figure, axes = pyplot.subplots(figsize=(9, 4.5))
    x = [float(date2num(end)) for end in ends]  # type: ignore[no-untyped-call]
    axes.step(x, cumulative, where="post", label="delivered (cumulative over the range)")
    if lifetime is not None and report.rows:
        base = even_target(lifetime, *flight, report.rows[0].start)
        axes.plot(x, [even_target(lifetime, *flight, end) - base for end in ends], "--", label="even-pace target")
    axes.xaxis_date()
    axes.set_ylabel(report.currency if spend else "impressions")
    axes.set_title(f"{report.campaign_id}: delivery {report.first:%Y-%m-%d %H}h to {report.last:%Y-%m-%d %H}h UTC")
    axes.legend()
    figure.autofmt_xdate()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
