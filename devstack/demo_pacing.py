"""``make demo-pacing``: one simulated UTC day of budget pacing, time compressed, through the production step.

    python -m devstack.demo_pacing [--seed 7] [--out demo-output]

Every simulated minute runs ``adserve.delivery.pacing_step.run_pacing_step`` (the code PacingFunction runs)
against in-memory stores (``devstack.fakes``), then that minute's requests: a diurnal curve (a morning
trough at about a quarter of the evening peak, Poisson noise), each request eligible for each campaign with
the campaign's match rate, kept with the campaign's serve probability (Decide's throttle), and won by the highest
value x noise among those kept (one ad per request). Each win becomes an impression 95% of the time, counted
0 to 2 minutes later (the Track -> queue -> Record lag), which is what the next steps read. The traffic profile
learns from 7 earlier days of hourly request counts of the same curve.

Fourteen campaigns: budgets from a twentieth of what their traffic could give to twice it, even and asap,
impressions and spend, two of them targeting the morning hours only. Prints per campaign delivered/budget and
the largest gap between cumulative delivery and the target curve, writes ``pacing.png`` and
``pacing-summary.json``, and checks:

- every even campaign whose budget its traffic can fill delivers 98-101% of it;
- no campaign delivers more than 1% over its budget;
- even campaigns stay within 5% (of the budget) of their target curve all day;
- asap campaigns with a fillable budget reach it first (before their even peers) and stop within 1% of it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from adserve.campaigns.model import MICROS_PER_UNIT, Budget, BudgetUnit, Campaign, Pacing
from adserve.delivery.counting import DeliveryTotals, hour_of
from adserve.delivery.pacing_step import run_pacing_step

from devstack.fakes import InMemoryDeliveryCounter, InMemoryPacingStore

DAY = datetime(2026, 11, 25, tzinfo=UTC)
PEAK_REQUESTS_PER_MINUTE = 900
IMPRESSION_RATE = 0.95
MAX_LAG_MINUTES = 2
PLACEMENT = "audio_preroll"
FILLABLE = 0.85
"""A budget counts as fillable when it is at most 85% of what the campaign's eligible requests could give."""


@dataclass(frozen=True)
class SimulatedCampaign:
    campaign_id: str
    pacing: Pacing
    match_rate: float
    value_cpm: float
    budget_share: float
    """Daily budget as a share of the impressions the campaign's eligible requests could give in the day."""
    unit: BudgetUnit = BudgetUnit.IMPRESSIONS
    hours: tuple[int, ...] = ()
    """The hours of the day it targets (the simulated listeners' local hour is the UTC one); () for all."""

    def match_at(self, minute_of_day: int) -> float:
        """The share of a minute's requests eligible for it."""
        return self.match_rate if not self.hours or minute_of_day // 60 in self.hours else 0.0

    def eligible_requests(self) -> float:
        """Requests of the day it is eligible for, on average."""
        return sum(expected_requests(minute) * self.match_at(minute) for minute in range(1440))


CAMPAIGNS = (
    SimulatedCampaign("even-tiny", Pacing.EVEN, 0.30, 14.0, 0.05),
    SimulatedCampaign("even-small", Pacing.EVEN, 0.20, 12.0, 0.15),
    SimulatedCampaign("even-spend", Pacing.EVEN, 0.15, 10.0, 0.30, BudgetUnit.SPEND),
    SimulatedCampaign("even-half", Pacing.EVEN, 0.10, 9.0, 0.50),
    SimulatedCampaign("even-most", Pacing.EVEN, 0.08, 8.0, 0.70),
    SimulatedCampaign("even-over", Pacing.EVEN, 0.06, 11.0, 2.00),
    SimulatedCampaign("even-niche", Pacing.EVEN, 0.03, 13.0, 0.40),
    SimulatedCampaign("asap-small", Pacing.ASAP, 0.12, 15.0, 0.20),
    SimulatedCampaign("asap-half", Pacing.ASAP, 0.10, 7.0, 0.45),
    SimulatedCampaign("asap-spend", Pacing.ASAP, 0.08, 12.5, 0.35, BudgetUnit.SPEND),
    SimulatedCampaign("asap-over", Pacing.ASAP, 0.05, 6.0, 1.50),
    SimulatedCampaign("even-filler", Pacing.EVEN, 0.50, 2.0, 0.25),
    SimulatedCampaign("morning-few", Pacing.EVEN, 0.30, 16.0, 0.10, hours=(8, 9, 10, 11)),
    SimulatedCampaign("morning-most", Pacing.EVEN, 0.20, 18.0, 0.60, hours=(8, 9, 10, 11)),
)


def diurnal(minute_of_day: float) -> float:
    """Relative request rate: a trough around 07:00 at about a quarter (0.3 / 1.1) of the peak around 19:00."""
    phase = 2 * math.pi * (minute_of_day / 1440 - 19 / 24)
    return 0.6 + 0.4 * math.cos(phase) + 0.1 * math.cos(2 * phase)


def expected_requests(minute_of_day: float) -> float:
    return PEAK_REQUESTS_PER_MINUTE * diurnal(minute_of_day) / (0.6 + 0.4 + 0.1)


def campaign_of(simulated: SimulatedCampaign, day_supply: float) -> Campaign:
    amount = max(round(simulated.budget_share * day_supply), 1)
    if simulated.unit is BudgetUnit.SPEND:
        budget = Budget(unit=BudgetUnit.SPEND, daily=round(amount * simulated.value_cpm / 1000, 2))
    else:
        budget = Budget(unit=BudgetUnit.IMPRESSIONS, daily=float(amount))
    return Campaign.model_validate(
        {
            "campaign_id": simulated.campaign_id,
            "advertiser_id": f"adv-{simulated.campaign_id}",
            "name": simulated.campaign_id,
            "status": "active",
            "category": "demo",
            "flight_start": DAY - timedelta(days=1),
            "flight_end": DAY + timedelta(days=2),
            "placements": [PLACEMENT],
            "value_cpm": simulated.value_cpm,
            "budget": budget,
            "pacing": simulated.pacing,
            "targeting": {"hours": list(simulated.hours)},
            "creatives": [
                {
                    "ad_id": f"ad-{simulated.campaign_id}",
                    "format": "audio",
                    "title": simulated.campaign_id,
                    "media_url": "https://cdn.example.com/a.mp3",
                    "click_url": "https://example.com",
                    "duration_seconds": 15,
                }
            ],
        }
    )


def units(campaign: Campaign, impressions: int) -> int:
    budget = campaign.budget
    assert budget is not None
    return impressions if budget.unit is BudgetUnit.IMPRESSIONS else impressions * campaign.spend_micros_per_impression


def simulate(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    day_requests = sum(expected_requests(minute) for minute in range(1440))
    campaigns = [campaign_of(c, c.eligible_requests() * IMPRESSION_RATE) for c in CAMPAIGNS]
    counter = InMemoryDeliveryCounter()
    for day in range(1, 8):  # the week of request counts the profile learns from
        for hour in range(24):
            expected = sum(expected_requests(hour * 60 + minute) for minute in range(60))
            counter.request_counts[(PLACEMENT, DAY - timedelta(days=day) + timedelta(hours=hour), hour)] = int(
                rng.poisson(expected)
            )
    store = InMemoryPacingStore()
    values = np.array([c.value_cpm for c in CAMPAIGNS])
    arriving = np.zeros((1440 + MAX_LAG_MINUTES + 1, len(campaigns)), dtype=np.int64)
    timeline: list[list[dict[str, float]]] = [[] for _ in campaigns]
    for minute in range(1440):
        now = DAY + timedelta(minutes=minute)
        run_pacing_step(campaigns, counter, counter, store, now)
        states = [store.states[c.campaign_id] for c in campaigns]
        for index, state in enumerate(states):
            timeline[index].append(
                {
                    "minute": minute,
                    "delivered": state.delivered_today,
                    "target": state.target_now,
                    "p": state.serve_probability,
                }
            )
        probabilities = np.array([state.serve_probability for state in states])
        requests = int(rng.poisson(expected_requests(minute)))
        matches = np.array([c.match_at(minute) for c in CAMPAIGNS])
        competing = rng.random((requests, len(campaigns))) < matches * probabilities
        bids = np.where(competing, values * rng.lognormal(0.0, 0.3, (requests, len(campaigns))), -1.0)
        winners = bids.argmax(axis=1)[bids.max(axis=1) > 0]
        shown = winners[rng.random(winners.size) < IMPRESSION_RATE]
        lags = rng.integers(0, MAX_LAG_MINUTES + 1, shown.size)
        np.add.at(arriving, (minute + lags, shown), 1)
        this_hour = hour_of(now)
        decided = (PLACEMENT, this_hour, this_hour.hour)
        counter.request_counts[decided] = counter.request_counts.get(decided, 0) + requests
        for index, campaign in enumerate(campaigns):
            count = int(arriving[minute, index])
            if count:
                key = (campaign.campaign_id, this_hour)
                counter.hours[key] = counter.hours.get(key, DeliveryTotals()) + DeliveryTotals(
                    impressions=count, spend_micros=count * campaign.spend_micros_per_impression
                )
    return summarise(campaigns, timeline, arriving, day_requests)


def summarise(
    campaigns: list[Campaign], timeline: list[list[dict[str, float]]], arriving: np.ndarray, day_requests: float
) -> dict[str, Any]:
    rows = []
    for index, (campaign, simulated) in enumerate(zip(campaigns, CAMPAIGNS, strict=True)):
        budget = campaign.budget
        assert budget is not None
        assert budget.daily_units is not None
        delivered = units(campaign, int(arriving[:, index].sum()))
        supply = units(campaign, round(simulated.eligible_requests() * IMPRESSION_RATE))
        gaps = [abs(point["delivered"] - point["target"]) / budget.daily_units for point in timeline[index]]
        cumulative = np.cumsum(arriving[:1440, index])
        reached = np.flatnonzero(np.array([units(campaign, int(c)) for c in cumulative]) >= 0.99 * budget.daily_units)
        scale = MICROS_PER_UNIT if budget.unit is BudgetUnit.SPEND else 1
        rows.append(
            {
                "campaign_id": campaign.campaign_id,
                "pacing": campaign.pacing.value,
                "hours": list(simulated.hours),
                "unit": budget.unit.value,
                "budget": budget.daily_units / scale,
                "supply": supply / scale,
                "fillable": budget.daily_units <= FILLABLE * supply,
                "delivered": delivered / scale,
                "delivered_share": delivered / budget.daily_units,
                "max_gap_to_target": max(gaps) if campaign.pacing is Pacing.EVEN else None,
                "reached_budget_at_minute": int(reached[0]) if reached.size else None,
                "curve": [
                    [point["minute"], point["delivered"] / scale, point["target"] / scale]
                    for point in timeline[index][::10]
                ],
            }
        )
    return {"day": DAY.date().isoformat(), "requests": round(day_requests), "campaigns": rows}


def acceptance(summary: dict[str, Any]) -> list[tuple[str, bool]]:
    rows = summary["campaigns"]
    even_fillable = [row for row in rows if row["pacing"] == "even" and row["fillable"]]
    asap_fillable = [row for row in rows if row["pacing"] == "asap" and row["fillable"]]
    all_day = [row for row in even_fillable if not row["hours"]]  # a morning campaign's day ends at noon
    earliest_even = min((row["reached_budget_at_minute"] or 1440 for row in all_day), default=1440)
    return [
        (
            "every fillable even campaign delivers 98-101% of its budget",
            all(0.98 <= row["delivered_share"] <= 1.01 for row in even_fillable),
        ),
        ("no campaign over-delivers by more than 1%", all(row["delivered_share"] <= 1.01 for row in rows)),
        (
            "even campaigns stay within 5% of their target curve all day",
            all(row["max_gap_to_target"] <= 0.05 for row in even_fillable),
        ),
        (
            "fillable asap campaigns reach their budget first and stop within 1% of it",
            all(
                row["reached_budget_at_minute"] is not None
                and row["reached_budget_at_minute"] < earliest_even
                and 0.99 <= row["delivered_share"] <= 1.01
                for row in asap_fillable
            ),
        ),
    ]


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'CAMPAIGN':<12} {'PACING':<6} {'UNIT':<11} {'BUDGET':>10} {'SUPPLY':>10} {'DELIVERED':>10}  SHARE  GAP"]
    for row in summary["campaigns"]:
        gap = "-" if row["max_gap_to_target"] is None else f"{row['max_gap_to_target']:.1%}"
        lines.append(
            f"{row['campaign_id']:<12} {row['pacing']:<6} {row['unit']:<11} {row['budget']:>10,.0f}"
            f" {row['supply']:>10,.0f} {row['delivered']:>10,.0f} {row['delivered_share']:>6.1%} {gap:>5}"
        )
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - a dev dependency, loaded only here

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    campaigns = summary["campaigns"]
    columns = 4
    rows = -(-len(campaigns) // columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(16, 3.4 * rows), sharex=True, squeeze=False)
    for ax in axes.flat[len(campaigns) :]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, campaigns, strict=False):  # the grid's last cells may be empty, hidden above
        minutes = [point[0] / 60 for point in row["curve"]]
        ax.plot(minutes, [point[1] for point in row["curve"]], label="delivered (counted)")
        if row["pacing"] == "even":
            ax.plot(minutes, [point[2] for point in row["curve"]], "--", label="target (traffic-shaped)")
        ax.axhline(row["budget"], color="grey", linewidth=0.8, label="daily budget")
        ax.set_title(f"{row['campaign_id']} ({row['pacing']}): {row['delivered_share']:.1%}", fontsize=10)
    axes.flat[0].legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("hour (UTC)")
    figure.suptitle("make demo-pacing: cumulative delivery against the target curve over one simulated day")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo_pacing", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    arguments = parser.parse_args(argv)
    summary = simulate(arguments.seed)
    checks = acceptance(summary)
    summary["checks"] = [{"check": name, "passed": passed} for name, passed in checks]
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "pacing-summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, arguments.out / "pacing.png")
    print(table(summary))  # noqa: T201
    for name, passed in checks:
        print(f"{'PASS' if passed else 'MISS'}  {name}")  # noqa: T201
    print(f"wrote {arguments.out / 'pacing.png'} and {arguments.out / 'pacing-summary.json'}")  # noqa: T201
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["acceptance", "main", "simulate"]
