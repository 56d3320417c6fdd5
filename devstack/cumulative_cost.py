"""The cumulative cost of learning: the click rate over the whole run, exploration included, per policy.

    python -m devstack.cumulative_cost [--seeds 1-2] [--rounds 10000,10000,10000] [--workers 2]
    python -m devstack.cumulative_cost --seeds 1-10 --rounds 30000,25000,25000     # the full run
    python -m devstack.cumulative_cost --docs-only     # only rewrite the docs' table from the results file
    python -m devstack.cumulative_cost --against VARIANT --seeds 2-3 --vw "--squarecb --gamma_scale 1000"
    python -m devstack.cumulative_cost --against VARIANT --seeds 1-10 --weekdays 2-5    # each world on 4 days

``--against`` compares one of ``demo_sweep.VARIANTS`` with VW on the streams of that variant's rounds (a stream
depends on the rounds: each round draws from a seed of its own), round by round, at the sweep's play rate
(``demo_sweep.PLAY_RATE``); it writes ``--out`` (default ``bench/results/vw_against.json``, committed for the
recipe of docs/learning.md's "The recipe closest to the oracle") and rewrites the docs' ``--region`` table from it
(``vw-against`` by default; ``--against VARIANT --docs-only`` only rewrites the table). The worlds take the
clock's day of week unless ``--weekdays`` fixes it (as ``demo_sweep --weekdays`` does): one day's ten worlds are
one draw, so a verdict against VW is judged over several; the table then has a row per day, not per world.

A policy's final greedy click rate says what it learned; what it cost to learn shows in the click rate of
every decision it served on the way, the explored ones included. Each world (``--seeds``) gets one stream
of traffic (``demo_sweep.round_traffic``: the demo's world, listeners and candidates, round by round), and
every policy serves that same stream:

- adserve's policies (``POLICIES``: epsilon-greedy at the demo's 0.4 and at 0.1, SquareCB at the configured
  gamma and around it) learn in rounds as the demo does (``demo_sweep.replay``: the bootstrap model serves
  the first round, and the model retrained on all logs so far serves the next);
- Vowpal Wabbit (``VW_SETTINGS``, every one tried and reported, the best in the table) learns online:
  ``cb_explore_adf`` over the same listener and ad features, updated after every decision with the reward
  of the ad it chose (``run_online``), when that ad was played;
- the oracle serves the ad with the highest true click probability.

A run's click rate is the mean true click probability of the ads it served (the expected click rate, free
of the click draws' noise). The final greedy policy of adserve's rounds is also measured on fresh
listeners against the greedy oracle (``greedy / oracle``), as in ``demo_sweep``.

The results go to ``bench/results/cumulative_cost.json`` (committed), and docs/learning.md's table between
``<!-- cumulative-cost -->`` and ``<!-- /cumulative-cost -->`` is rewritten from it;
``tests/unit/test_cumulative_cost.py`` fails when the two disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from adserve.outcomes.decision_records import PolicyName
from vowpalwabbit import Workspace

from bench.vw_peer import ad_line, shared_line
from devstack.demo import DemoConfig
from devstack.demo_sweep import (
    PLAY_RATE,
    VARIANTS,
    WEEKDAYS,
    day_seed,
    replay,
    round_traffic,
    weekday_range,
    world_label,
)
from devstack.generated_tables import publish, seed_range
from devstack.simulated_logs import START, StreamDecision, simulate_traffic

__all__ = ["OnlineRun", "against_variant", "main", "online_world", "run_online", "stream_of"]

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "cumulative_cost.json"
AGAINST_RESULTS = REPO_ROOT / "bench" / "results" / "vw_against.json"
DEFAULT_ROUNDS = (10_000, 10_000, 10_000)

POLICIES: dict[str, tuple[PolicyName, float]] = {
    "epsilon-greedy 0.4": ("epsilon_greedy", 0.4),
    "epsilon-greedy 0.1": ("epsilon_greedy", 0.1),
    "squarecb 50": ("squarecb", 50.0),
    "squarecb 200": ("squarecb", 200.0),
    "squarecb 1000": ("squarecb", 1000.0),
}
"""adserve's policies: the demo's epsilon, a smaller one, and SquareCB at the configured gamma (200) and around it."""
BASELINE = "epsilon-greedy 0.4"

VW_COMMON = "--cb_explore_adf -q LA --quiet"
VW_SETTINGS = (
    "--epsilon 0.02",
    "--epsilon 0.05",
    "--epsilon 0.1",
    "--squarecb --gamma_scale 10",
    "--squarecb --gamma_scale 100",
    "--squarecb --gamma_scale 1000",
    "--cover 4",
    "--bag 5",
)
"""What was tried for VW, each with ``VW_COMMON`` (listener x ad interactions, as adserve's FM has)."""


class Learner(Protocol):
    """What ``run_online`` needs of a contextual bandit: VW's ``Workspace`` has it."""

    def predict(self, example: list[str]) -> Any: ...

    def learn(self, example: list[str]) -> None: ...


@dataclass
class OnlineRun:
    """The bookkeeping of an online learner's run: what it served and what it learned from."""

    served_true_ctrs: list[float] = dataclasses.field(default_factory=list)
    """The served ads' true click probabilities, decision by decision."""
    clicks: int = 0
    learned: int = 0
    """Decisions whose served ad was played, so their reward was known and learned from."""

    @property
    def decisions(self) -> int:
        return len(self.served_true_ctrs)

    @property
    def run_click_rate(self) -> float:
        return float(np.mean(self.served_true_ctrs)) if self.served_true_ctrs else 0.0


def run_online(
    learner: Learner, stream: Iterable[StreamDecision], rng: np.random.Generator, play_rate: float = 1.0
) -> OnlineRun:
    """Serve every decision of ``stream`` by ``learner``'s pmf and update it with the reward of the served ad.

    A played ad is clicked with its true probability; the learner gets cost -1 for a click and 0 for none,
    with the probability it chose the ad with. An ad not played teaches nothing, as in adserve's training.
    """
    run = OnlineRun()
    lines: dict[str, str] = {}
    for decision in stream:
        shared = shared_line(decision.listener)
        actions = [lines.setdefault(ad["ad_id"], ad_line(ad)) for ad in decision.ads]
        pmf = np.asarray(learner.predict([shared, *actions]), dtype=np.float64)
        if len(pmf) != len(actions):
            raise RuntimeError(f"a pmf over {len(pmf)} actions for {len(actions)} ads")
        action = int(rng.choice(len(pmf), p=pmf / pmf.sum()))
        run.served_true_ctrs.append(float(decision.true_ctr[action]))
        if play_rate < 1.0 and rng.random() >= play_rate:
            continue
        clicked = bool(rng.random() < decision.true_ctr[action])
        run.clicks += clicked
        run.learned += 1
        label = f"0:{-1.0 if clicked else 0.0}:{pmf[action]} "
        learner.learn([shared, *((label if i == action else "") + line for i, line in enumerate(actions))])
    return run


class _Discard:
    def put_object(self, key: str, body: bytes) -> None:
        """The stream's logs are not needed: the policies write their own."""


def stream_of(config: DemoConfig, seed: int) -> list[StreamDecision]:
    """World ``seed``'s traffic as ``demo_sweep.replay`` serves it, round after round (it depends on the
    seed and the day of week only, ``demo_sweep.day_seed``)."""
    config = dataclasses.replace(config, seed=seed)
    world = config.world()
    stream: list[StreamDecision] = []
    end = START
    for number, decisions in enumerate(config.rounds, start=1):
        traffic = dataclasses.replace(
            round_traffic(config, world, number, decisions, end), keep_truth=False, keep_stream=True
        )
        stream += simulate_traffic(_Discard(), world, traffic, scorer=_unit_scores).stream
        end += traffic.span
    return stream


def _unit_scores(_listeners: Sequence[Mapping[str, str]], ads: Sequence[Mapping[str, str]]) -> np.ndarray:
    return np.ones(len(ads))


def online_world(config: DemoConfig, seed: int, settings: Sequence[str]) -> dict[str, Any]:
    """The oracle and every VW setting on world ``seed``'s stream (VW's own draws: the world's on its day)."""
    config = dataclasses.replace(config, seed=seed)
    stream = stream_of(config, seed)
    best = [float(d.true_ctr.max()) for d in stream]
    runs: dict[str, Any] = {
        "oracle": {"run_click_rate": float(np.mean(best)), "round_click_rates": _by_round(config, best)}
    }
    for setting in settings:
        workspace = Workspace(f"{VW_COMMON} {setting}")
        try:
            started = time.perf_counter()
            online = run_online(workspace, stream, np.random.default_rng([day_seed(config), 23]), config.play_rate)
        finally:
            workspace.finish()
        runs[f"vw {setting}"] = {
            "run_click_rate": online.run_click_rate,
            "round_click_rates": _by_round(config, online.served_true_ctrs),
            "clicks": online.clicks,
            "learned": online.learned,
            "seconds": round(time.perf_counter() - started, 1),
        }
    return {"seed": seed, "decisions": len(stream), "runs": runs}


def _by_round(config: DemoConfig, served_true_ctrs: Sequence[float]) -> list[float]:
    """The mean served true CTR of each of ``config.rounds``'s spans of the stream."""
    bounds = np.cumsum([0, *config.rounds])
    return [round(float(np.mean(served_true_ctrs[lo:hi])), 5) for lo, hi in pairwise(bounds)]


def _adserve_world(config: DemoConfig, policy: str, seed: int) -> dict[str, Any]:
    name, parameter = POLICIES[policy]
    config = dataclasses.replace(config, policy=name)
    if name == "squarecb":
        config = dataclasses.replace(config, gamma=parameter)
    else:
        config = dataclasses.replace(config, epsilon=parameter)
    run = replay(config, seed)
    keep = ("run_click_rate", "round_click_rates", "greedy_click_rate", "oracle_click_rate", "greedy_over_oracle")
    return {"seed": seed, "policy": policy} | {key: run[key] for key in keep}


REPLAYED = ("run_click_rate", "round_click_rates", "greedy_over_oracle")
"""What ``--against`` keeps of the variant's replay: the same keys in a ``demo_sweep`` run (``--replays``)."""


def against_variant(
    config: DemoConfig,
    variant: str,
    seed: int,
    settings: Sequence[str],
    replayed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``demo_sweep``'s ``variant`` and VW's ``settings`` on world ``seed``'s stream of that variant's rounds, round
    by round: where over the run one earns what the other does not (the bootstrap round, a retrain, between them).

    ``replayed``: that world's run of the variant from a ``demo_sweep`` results file, instead of replaying it again
    (the stream is the seed's, the day's and the rounds', whatever the policy, so the replay is the same one).
    """
    config = dataclasses.replace(config, **VARIANTS[variant])
    world = online_world(config, seed, settings)
    run = replay(config, seed) if replayed is None else replayed
    world["runs"][variant] = {key: run[key] for key in REPLAYED}
    return world | {"rounds": list(config.rounds)} | ({} if config.weekday is None else {"weekday": config.weekday})


def summarize(worlds: Sequence[Mapping[str, Any]], adserve: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per policy: the means over worlds of its run click rate, that over the oracle's, and greedy / oracle."""
    oracle = {world["seed"]: world["runs"]["oracle"]["run_click_rate"] for world in worlds}
    per_policy: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for world in worlds:
        for name, run in world["runs"].items():
            per_policy.setdefault(name, []).append((world["seed"], run))
    for run in adserve:
        per_policy.setdefault(run["policy"], []).append((run["seed"], run))
    rows = []
    for name, runs in per_policy.items():
        greedy = [run["greedy_over_oracle"] for _, run in runs if "greedy_over_oracle" in run]
        rows.append(
            {
                "policy": name,
                "worlds": len(runs),
                "run_click_rate": round(float(np.mean([run["run_click_rate"] for _, run in runs])), 5),
                "run_over_oracle": round(
                    float(np.mean([run["run_click_rate"] / oracle[seed] for seed, run in runs])), 5
                ),
                "last_round_click_rate": round(float(np.mean([run["round_click_rates"][-1] for _, run in runs])), 5),
                "greedy_over_oracle": round(float(np.mean(greedy)), 5) if greedy else None,
            }
        )
    return rows


def markdown(results: Mapping[str, Any]) -> str:
    rows = {row["policy"]: row for row in results["summary"]}
    vw = [row for name, row in rows.items() if name.startswith("vw ")]
    best = max(vw, key=lambda row: row["run_click_rate"])
    baseline = rows[BASELINE]["run_click_rate"]
    shown = [rows["oracle"], *(rows[name] for name in POLICIES if name in rows), best]
    settings = results["settings"]
    lines = [
        f"Offline, `python -m devstack.cumulative_cost`: means over {best['worlds']} worlds of "
        f"{sum(settings['rounds']):,} decisions each (adserve retrains after rounds of {settings['rounds']}; "
        f"VW {results['vw_version']} learns after every decision); play rate {settings['play_rate']}.",
        "",
        "| policy | click rate over the run | run / oracle | vs epsilon-greedy 0.4 | last round's click rate "
        "| final greedy / oracle |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in shown:
        name = "oracle (best ad by true probability)" if row["policy"] == "oracle" else row["policy"]
        name = f"{name} (VW's best of those tried)" if row is best else name
        greedy = "" if row["greedy_over_oracle"] is None else f"{row['greedy_over_oracle']:.1%}"
        lines.append(
            f"| {name} | {row['run_click_rate']:.2%} | {row['run_over_oracle']:.1%} "
            f"| {row['run_click_rate'] / baseline - 1:+.1%} | {row['last_round_click_rate']:.2%} | {greedy} |"
        )
    tried = ", ".join(f"`{row['policy'][3:]}` {row['run_click_rate']:.2%}" for row in vw)
    lines += ["", f"VW settings tried (each with `{VW_COMMON}`), click rate over the run: {tried}."]
    return "\n".join(lines) + "\n"


def against_results(
    variant: str, play_rate: float, worlds: Sequence[Mapping[str, Any]], vw_version: str
) -> dict[str, Any]:
    """What ``--against`` writes: the variant, its stream's settings and each world's runs (``against_variant``)."""
    return {"variant": variant, "play_rate": play_rate, "vw_version": vw_version, "worlds": list(worlds)}


def against_markdown(results: Mapping[str, Any]) -> str:
    """docs/learning.md's ``vw-against`` table: per world (per day of week when ``--weekdays`` fixed several), the run
    click rates of the oracle, the variant and each VW setting, and the variant's over VW's best; the last row the
    means. Over several days a column counts the worlds in which the variant earned more than every VW setting."""
    variant, worlds = results["variant"], results["worlds"]
    vw = [name for name in worlds[0]["runs"] if name.startswith("vw ")]
    columns = ["oracle", variant, *vw]
    days = sorted({world["weekday"] for world in worlds if "weekday" in world})

    def rates(world: Mapping[str, Any]) -> list[float]:
        return [world["runs"][name]["run_click_rate"] for name in columns]

    def means(group: Sequence[Mapping[str, Any]]) -> list[float]:
        return [float(np.mean(column)) for column in zip(*(rates(world) for world in group), strict=True)]

    by_day = len(days) > 1
    groups = (
        [(WEEKDAYS[int(day)], [world for world in worlds if world.get("weekday") == day]) for day in days]
        if by_day
        else [(str(world["seed"]), [world]) for world in worlds]
    )
    groups.append(("mean", worlds))
    seeds = sorted({world["seed"] for world in worlds})
    where = f", worlds {seeds[0]}-{seeds[-1]} on each of {len(days)} days of week" if by_day else ""
    header = ["day" if by_day else "world", "oracle", "variant", *vw, "variant vs VW's best"]
    header += ["variant ahead of VW in"] if by_day else []
    lines = [
        f"Offline, `python -m devstack.cumulative_cost --against`: click rate over each world's run of "
        f"{worlds[0]['decisions']:,} decisions{where} (the variant, *{variant}*, retrains after rounds of "
        f"{worlds[0]['rounds']}; "
        f"VW {results['vw_version']} learns after every decision, each with `{VW_COMMON}`); play rate "
        f"{results['play_rate']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for name, group in groups:
        row = means(group)
        cells = [name, *(f"{rate:.2%}" for rate in row), f"{row[1] / max(row[2:]) - 1:+.1%}"]
        if by_day:
            ahead = sum(world_rates[1] > max(world_rates[2:]) for world_rates in map(rates, group))
            cells.append(f"{ahead} of {len(group)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rounds(text: str) -> tuple[int, ...]:
    try:
        rounds = tuple(int(part) for part in text.split(","))
    except ValueError:
        rounds = ()
    if not rounds or min(rounds) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive round sizes, got {text!r}")
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_range, default=seed_range("1-2"), help="world seeds, e.g. 7 or 1-10")
    parser.add_argument("--rounds", type=_rounds, default=DEFAULT_ROUNDS, help="decisions per round, e.g. 30000,25000")
    parser.add_argument("--play-rate", type=float, default=1.0, help="chance the simulated app plays a chosen ad")
    parser.add_argument("--workers", type=int, default=2, help="worlds and policies run in parallel")
    parser.add_argument(
        "--out", type=Path, help=f"JSON results (default {RESULTS.name}, with --against {AGAINST_RESULTS.name})"
    )
    parser.add_argument("--docs-only", action="store_true", help="only rewrite the docs' table from --out")
    parser.add_argument("--against", choices=list(VARIANTS), help="compare this demo_sweep variant with VW, per round")
    parser.add_argument("--vw", nargs="+", default=list(VW_SETTINGS), help="the VW settings to run (with --against)")
    parser.add_argument("--region", default="vw-against", help="the docs' region the --against table goes to")
    parser.add_argument(
        "--weekdays",
        type=weekday_range,
        help="with --against: days of week (0 Monday to 6, e.g. 2-5) each world is replayed on; default the clock's",
    )
    parser.add_argument(
        "--replays",
        type=Path,
        help="with --against: take the variant's runs from this demo_sweep results file (same worlds, days and "
        "play rate) instead of replaying them; only VW runs",
    )
    args = parser.parse_args(argv)
    if args.against is None and (args.weekdays is not None or args.replays is not None):
        parser.error("--weekdays and --replays need --against")
    if args.against is not None:
        out = args.out or AGAINST_RESULTS
        against = (
            None
            if args.docs_only
            else _against(
                args.against,
                args.seeds,
                args.vw,
                args.workers,
                weekdays=args.weekdays,
                out=out,
                replays=None if args.replays is None else sweep_runs(args.replays, args.against),
            )
        )
        print(against_markdown(publish(against, out, args.region, against_markdown)))  # noqa: T201
        return 0
    results: dict[str, Any] | None = None
    if not args.docs_only:
        started = time.perf_counter()
        config = DemoConfig(rounds=args.rounds, play_rate=args.play_rate)
        jobs = [(policy, seed) for seed in args.seeds for policy in POLICIES]
        with ProcessPoolExecutor(args.workers) as pool:
            online = [pool.submit(online_world, config, seed, VW_SETTINGS) for seed in args.seeds]
            adserve = list(pool.map(_adserve_world, [config] * len(jobs), *zip(*jobs, strict=True)))
            worlds = [future.result() for future in online]
        settings = {"rounds": list(config.rounds), "play_rate": config.play_rate, "seeds": args.seeds}
        results = {
            "settings": settings,
            "vw_version": version("vowpalwabbit"),
            "minutes": round((time.perf_counter() - started) / 60, 1),
            "summary": summarize(worlds, adserve),
            "worlds": worlds,
            "adserve": adserve,
        }
    print(markdown(publish(results, args.out or RESULTS, "cumulative-cost", markdown)))  # noqa: T201
    return 0


def sweep_runs(path: Path, variant: str) -> dict[tuple[int, str | None], Mapping[str, Any]]:
    """``variant``'s runs in a ``demo_sweep`` results file, by (world, day of week); an error unless they were
    replayed at ``--against``'s play rate."""
    results = json.loads(path.read_text())
    if results["settings"]["play_rate"] != PLAY_RATE:
        raise SystemExit(f"{path} was replayed at play rate {results['settings']['play_rate']}, not {PLAY_RATE}")
    return {(run["seed"], run.get("weekday")): run for run in results["runs"] if run["variant"] == variant}


def _against(
    variant: str,
    seeds: Sequence[int],
    settings: Sequence[str],
    workers: int,
    *,
    weekdays: Sequence[str] | None,
    out: Path,
    replays: Mapping[tuple[int, str | None], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    configs = [DemoConfig(play_rate=PLAY_RATE, weekday=day) for day in weekdays or (None,)]
    pairs = [(config, seed) for config in configs for seed in seeds]
    if replays is not None and (
        missing := [(seed, c.weekday) for c, seed in pairs if (seed, c.weekday) not in replays]
    ):
        raise SystemExit(f"--replays has no run of {variant!r} for (world, day) {missing}")
    jobs = [
        (config, variant, seed, settings, None if replays is None else replays[seed, config.weekday])
        for config, seed in pairs
    ]
    results = against_results(variant, PLAY_RATE, [], version("vowpalwabbit"))
    with ProcessPoolExecutor(workers) as pool:
        for world in pool.map(against_variant, *zip(*jobs, strict=True)):
            results["worlds"].append(world)
            for name, run in world["runs"].items():
                rounds = " ".join(f"{rate:.2%}" for rate in run["round_click_rates"])
                line = f"world {world_label(world):>2}  {run['run_click_rate']:.2%}  rounds {rounds}  {name}"
                print(line, flush=True)  # noqa: T201
            out.write_text(json.dumps(results, indent=2) + "\n")  # after every world: a run cut short leaves results
    return results


if __name__ == "__main__":
    sys.exit(main())
