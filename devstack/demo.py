"""``make demo``: the whole retraining loop on the local stack, driven by simulated listeners.

    python -m devstack.demo [--quick] [--out demo-output] [--rounds 30000,25000,25000] [--seed 7] [--consent-share 1]
    python -m devstack.demo --publish     # also bench/results/demo_run.json and README's demo-run table

1. A simulated world (``adserve.training.simulation.World``) with a seed other than the bootstrap model's: its
   campaigns (one campaign per world campaign, its ads as creatives, category and format from the world,
   no caps, the same value_cpm for all so ranking is by predicted CTR) are put through CampaignStore, under
   ids the bootstrap model has never seen (``demo-`` prefix).
2. Logging rounds, as the scheduled retrain runs in production: simulated listeners, a few at a time, ask Decide
   (invoked in process); each shown ad's impression and, with its true probability, its click are reported through
   Track (``POST /v1/events`` in batches of 100, a few as beacons); Record writes the logs via the event
   source mapping. After each round, ``adserve.training.retraining.retrain`` learns from every round so far
   (dataset, trainer, IPS/SNIPS/DR, publish, promote) and the demo waits until Decide's responses carry
   the new model version (hot swap). The bootstrap model serves round 1, retrain k's model round k + 1.
3. Fresh traffic measures the last retrained model.
4. The oracle (true probabilities) and a random policy, evaluated offline on fresh listeners of the same
   distribution with the same policy (one ad per decision).

Every policy, the oracle included, explores as a deployment with the template's defaults does (SquareCB at
gamma 200; ``--policy epsilon_greedy`` for epsilon-greedy at 0.4), so the phases differ only in the scores the
policy ranks by, and the off-policy estimate (computed for the logged policy) is of the policy that the
retrained phase actually serves. Prints the table, PASS/MISS for the acceptance checks, and the paths
of the PNG plot, report.md and summary.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import numpy as np
from adserve.campaigns.model import Campaign
from adserve.core.vocabulary import Placement
from adserve.dal.aws_clients import dynamodb_client, s3_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.log_store import S3LogStore
from adserve.dal.model_store import S3ModelStore
from adserve.decisions.policy import (
    EpsilonGreedy,
    ExplorationPolicy,
    exploration_policy,
    relative_uncertainty,
    served_exploration,
)
from adserve.outcomes.decision_records import PolicyName
from adserve.training.dataset import ExamplesFrom
from adserve.training.factorization_machine import TrainingConfig
from adserve.training.prefetch import PrefetchingReader
from adserve.training.progress import Progress
from adserve.training.simulation import World, bayes_auc
from adserve.training.trainer import TrainerConfig

from bench import environment
from devstack.demo_report import (
    Check,
    DemoResult,
    Phase,
    RetrainStep,
    StackLoad,
    acceptance,
    cpu_by_process,
    off_policy_of,
    run_markdown,
    table,
    write_outputs,
)
from devstack.generated_tables import publish
from devstack.lambda_runtime import MetricsListener
from devstack.simulated_logs import CONSENTING, NOT_CONSENTING, consent_draws, served_view
from devstack.stack import DEFAULT_TEMPLATE, LocalStack

if TYPE_CHECKING:
    from adserve.training.retraining import RetrainResult

__all__ = ["DemoConfig", "main", "run_demo"]

DEMO_RUN = Path(__file__).resolve().parent.parent / "bench" / "results" / "demo_run.json"
"""The summary of the full ``make demo`` README's demo-run table is rendered from (``--publish``)."""
DEMO_SEED = 7  # the bootstrap model's world is World(seed=20240601)
ID_PREFIX = "demo-"
PLACEMENTS = [
    "audio_preroll",
    "audio_midroll",
    "podcast_preroll",
    "podcast_midroll",
    "podcast_postroll",
    "display_companion",
]
EVENTS_PER_BATCH = 100
FLUSH_RETRIES = 12  # backoff 0.2 s doubling to 5 s, as an app retries a failed event
BEACONS = 5
VALUE_CPM = 10.0
"""Every demo campaign's CPM: with equal values the policy ranks by predicted CTR alone."""
QUEUE_HIGH_WATER = 300
"""Pause the traffic above this many queued messages, so Record never falls far behind."""
QUEUE_CHECK_EVERY = 200
DECISION_WORKERS = 4
"""Listeners in flight at once: enough to keep Decide's environments and the moto process busy together."""
DECIDE_ENVIRONMENTS = 2
"""Decide's concurrent execution environments (each a process, each swapping to a promoted model on its own)."""
RECORD_ENVIRONMENTS = 2
"""Record's: the outcomes queue's event source invokes as many batches at once (see ``EventSourceMappings``)."""
REWARD_WINDOW = timedelta(hours=1)
"""Whole hours: outcomes.logs.read_joined_decisions closes decisions on hour boundaries."""


@dataclass(frozen=True)
class DemoConfig:
    """The demo's world and traffic; the defaults are what the acceptance figures in the README come from.

    Each entry of ``rounds`` is one logging period: the bootstrap model serves the first, the model retrained
    after round k serves round k + 1, and every retrain learns from all rounds so far, as the scheduled
    retrain does in production. The last retrain's holdout was logged by a model close to it, which keeps the
    off-policy estimate's importance weights, and so its variance, small.
    """

    rounds: tuple[int, ...] = (30_000, 25_000, 25_000)
    eval_decisions: int = 20_000
    offline_decisions: int = 50_000
    policy: PolicyName = "squarecb"
    """The template's default (``ExplorationPolicy``), so the demo serves as a deployment does; epsilon-greedy at
    ``epsilon`` was the default until README's 10-world table of the demo's checks found SquareCB passing them all."""
    epsilon: float = 0.4
    gamma: float = 200.0
    gamma_scale: float = 0.0
    """Decide's ``EXPLORATION_GAMMA_SCALE``: above 0, SquareCB's gamma grows with the decisions the serving model
    learned from (``policy.served_exploration``), ``gamma`` its cap; 0: the fixed ``gamma``."""
    optimism: float = 0.0
    """Decide's ``EXPLORATION_OPTIMISM`` (``policy.SquareCB``): 0 off."""
    play_rate: float = 1.0
    """The chance the simulated app plays a chosen ad; below 1, Track hears nothing of the others."""
    consent_share: float = 1.0
    """The share of listeners consenting to personalisation; the others send ``personalise: false`` (capping and
    measurement still allowed) and are served contextually, as minors always are."""
    examples_from: ExamplesFrom = "impressions"
    gated: bool = False
    """Offline replays (``demo_sweep``): True, a round is served by the model Retrain's promotion rule left as
    champion, as Decide serves it; False, by every retrained model, promoted or not."""
    min_rows: int = 1000
    min_positives: int = 20
    """Retrain's ``MIN_ROWS`` and ``MIN_POSITIVES`` (the same defaults): a retrain of fewer examples or clicks
    publishes nothing, and the model serving goes on serving."""
    weekday: str | None = None
    """Offline replays: the day of week (``"0"`` Monday to ``"6"``) every listener is served on; None, the clock's,
    as the stack's Decide serves the live demo. A world's replay depends on it (``day_of_week`` is a model input),
    so a replay run on another day is another draw unless the day is fixed."""
    seed: int = DEMO_SEED
    n_advertisers: int = 8
    campaigns_per_advertiser: int = 1
    ads_per_campaign: int = 2
    base_ctr: float = 0.06
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(fit=TrainingConfig(l2_factors=1e-3)))
    out_dir: Path = Path("demo-output")

    @classmethod
    def quick(cls, out_dir: Path) -> DemoConfig:
        return cls(rounds=(3_000, 2_000), eval_decisions=2_000, offline_decisions=10_000, out_dir=out_dir)

    def exploration(self, logged_decisions: int | None = None, *, heard_counted: bool = False) -> ExplorationPolicy:
        """The exploration policy Decide is configured with; given a serving model's ``logged_decisions``
        (``CtrModel.logged_decisions``, from its manifest) and whether it counted its ads (``heard_ads``), the one
        that model serves with, as Decide derives it."""
        parameter = self.gamma if self.policy == "squarecb" else self.epsilon
        configured = exploration_policy(self.policy, parameter, self.optimism)
        return served_exploration(configured, self.gamma_scale, logged_decisions, heard_counted=heard_counted)

    def world(self, **options: Any) -> World:
        """The demo's world; *options* switch on what the demo leaves off (``fatigue``, ``examination``)."""
        return World(
            self.seed,
            n_advertisers=self.n_advertisers,
            campaigns_per_advertiser=self.campaigns_per_advertiser,
            ads_per_campaign=self.ads_per_campaign,
            base_ctr=self.base_ctr,
            **options,
        )


EPSILON_DEMO = DemoConfig(policy="epsilon_greedy")
"""The demo as it explored until session 11, epsilon-greedy at 0.4: the replays whose committed tables were measured
with it (``consent_cost``, ``fatigue_cost``) keep it."""


def as_served(ad: Mapping[str, str]) -> dict[str, str]:
    """A world ad's features as Decide sees them: its ids under ``ID_PREFIX``, never seen by the bootstrap model."""
    return {**ad, **{name: ID_PREFIX + ad[name] for name in ("advertiser_id", "campaign_id", "ad_id")}}


def campaigns_of(world: World) -> list[Campaign]:
    """One uncapped campaign per world campaign, its ads as creatives, all at the same value."""
    by_campaign: dict[str, list[dict[str, str]]] = {}
    for ad in map(as_served, world.ads):
        by_campaign.setdefault(ad["campaign_id"], []).append(ad)
    return [
        Campaign.model_validate(
            {
                "campaign_id": campaign_id,
                "advertiser_id": ads[0]["advertiser_id"],
                "name": f"Demo {campaign_id}",
                "status": "active",
                "category": ads[0]["category"],
                "flight_start": "2020-01-01T00:00:00Z",
                "flight_end": "2100-01-01T00:00:00Z",
                "placements": PLACEMENTS,
                "value_cpm": VALUE_CPM,
                "creatives": [
                    {
                        "ad_id": ad["ad_id"],
                        "format": ad["format"],
                        "title": f"Demo {ad['ad_id']}",
                        "media_url": f"https://cdn.example.com/{ad['ad_id']}.mp3",
                        "click_url": "https://example.com/",
                    }
                    for ad in ads
                ],
            }
        )
        for campaign_id, ads in by_campaign.items()
    ]


def server_weekday(fixed: str | None = None) -> str:
    """The day of week Decide puts on every listener: its clock's, not the request's (*fixed* instead, when given:
    ``DemoConfig.weekday``)."""
    return str(datetime.now(UTC).weekday()) if fixed is None else fixed


def fresh_listeners(world: World, n: int, rng: np.random.Generator, weekday: str | None = None) -> list[dict[str, str]]:
    """Listeners from the world's audience, on the day Decide would see them (``server_weekday(weekday)``)."""
    day = server_weekday(weekday)
    return [listener | {"day_of_week": day} for listener in world.sample_listeners(n, rng)]


def true_ctr_by_ad(
    world: World, listeners: Sequence[Mapping[str, str]], ads_by_id: Mapping[str, Mapping[str, str]]
) -> list[dict[str, float]]:
    """Each listener's true click probability of every ad (keyed as *ads_by_id* is), in one vectorised call:
    the same values as ``world.click_probability`` per pair, at a twentieth of the CPU."""
    ad_ids, ads = list(ads_by_id), list(ads_by_id.values())
    pairs = ([listener for listener in listeners for _ in ads], ads * len(listeners))
    rows = world.click_probabilities(*pairs).reshape(len(listeners), len(ads)).tolist()
    return [dict(zip(ad_ids, row, strict=True)) for row in rows]


def decision_body(listener_id: str, listener: Mapping[str, str], consents: bool = True) -> str:
    return json.dumps(
        {
            "listener": {
                "id": listener_id,
                "country": listener["country"],
                "device": listener["device"],
                "age_bucket": listener["age_bucket"],
                "context": {
                    "content_type": listener["content_type"],
                    "genre": listener["genre"],
                    "local_hour": int(listener["hour_of_day"]),
                },
            },
            "placement": listener["placement"],
            "max_ads": 1,
            "consent": (CONSENTING if consents else NOT_CONSENTING).model_dump(exclude_none=True),
        }
    )


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


@dataclass
class LoggedTruth:
    """When each logged decision was made and the truth of its shown ad, to compute the Bayes AUC of any span."""

    decided_at: list[float] = field(default_factory=list)
    true_probs: list[float] = field(default_factory=list)
    clicks: list[int] = field(default_factory=list)

    def add(self, decided_at: float, true_prob: float, clicked: bool) -> None:
        self.decided_at.append(decided_at)
        self.true_probs.append(true_prob)
        self.clicks.append(int(clicked))

    def bayes_auc_since(self, moment: datetime) -> float | None:
        since = np.asarray(self.decided_at) >= moment.timestamp()
        clicks = np.asarray(self.clicks)[since]
        if clicks.size == 0 or clicks.min() == clicks.max():
            return None
        return round(bayes_auc(np.asarray(self.true_probs)[since], clicks), 6)


@dataclass(frozen=True)
class Visit:
    """One simulated listener's request and what the listener will do, all drawn before it is sent, so the
    draws come from the seeded generator in the same order however the requests interleave."""

    listener: Mapping[str, str]
    listener_id: str
    consents: bool
    plays: bool
    """Whether the app plays the shown ad (``max_ads`` is 1: at most one per decision)."""
    click_draw: float
    """Uniform in [0, 1): the shown ad is clicked when this is below its true click probability."""
    true_ctr: Mapping[str, float]
    """The listener's true click probability of every ad, by the ad id Decide serves it under (``true_ctr_by_ad``)."""


@dataclass(frozen=True)
class Served:
    """One decision as the listener saw it: when it was asked for, the model that answered, and the played ad's
    true click probability and click (none when nothing was played)."""

    decided_at: float
    model_version: str
    shown: tuple[tuple[float, bool], ...]


@dataclass
class Traffic:
    """Simulated listeners talking to the stack; remembers every shown ad's truth for the report.

    ``workers`` listeners are in flight at once (each asks Decide, then reports what it played), so the handlers
    in this process and the moto process work at the same time instead of waiting on each other.
    """

    stack: LocalStack
    world: World
    rng: np.random.Generator
    ads_by_id: Mapping[str, Mapping[str, str]]
    pending: list[dict[str, str]] = field(default_factory=list)
    beacons_left: int = BEACONS
    play_rate: float = 1.0
    """The chance the app plays a shown ad; an ad not played reports nothing and is not in the phase's rate."""
    consent_share: float = 1.0
    """The chance a listener consents to personalisation (the others are served contextually)."""
    workers: int = DECISION_WORKERS

    def __post_init__(self) -> None:
        # One client for the queue-depth checks (every QUEUE_CHECK_EVERY decisions, every 50 ms while paused):
        # a client per check cost more than the check.
        self._sqs = boto3.client("sqs", endpoint_url=self.stack.endpoint_url)
        self._events = threading.Lock()  # guards pending and beacons_left, which every worker reports into

    def listeners(self, n: int) -> list[dict[str, str]]:
        """Fresh listeners; day_of_week is the server's (Decide takes it from its clock)."""
        return fresh_listeners(self.world, n, self.rng)

    def visits(self, n: int) -> list[Visit]:
        """n fresh listeners and every draw their visits need, in one fixed order from the seeded generator."""
        listeners = self.listeners(n)
        ids = self.rng.integers(1_000_000, size=n)
        consents = self.rng.random(n) < self.consent_share if self.consent_share < 1.0 else np.ones(n, dtype=bool)
        plays = self.rng.random(n) < self.play_rate if self.play_rate < 1.0 else np.ones(n, dtype=bool)
        click_draws = self.rng.random(n)
        true_ctrs = true_ctr_by_ad(self.world, listeners, self.ads_by_id)
        return [
            Visit(
                listener,
                f"listener-{ids[i]}",
                bool(consents[i]),
                bool(plays[i]),
                float(click_draws[i]),
                true_ctrs[i],
            )
            for i, listener in enumerate(listeners)
        ]

    def decide(self, listener_id: str, listener: Mapping[str, str], consents: bool = True) -> dict[str, Any]:
        request = decision_body(listener_id, listener, consents)
        function_id, event = self.stack.http_event("POST", "/v1/decisions", body=request)
        response = self.stack.invoke(function_id, event)
        if response["statusCode"] != 200:
            raise RuntimeError(f"Decide answered {response['statusCode']}: {response.get('body')}")
        body: dict[str, Any] = json.loads(response["body"])
        return body

    def visit(self, visit: Visit) -> Served:
        """One listener: a decision, and the played ad's impression and (drawn with its true probability) click."""
        decided_at = time.time()
        response = self.decide(visit.listener_id, visit.listener, visit.consents)
        shown = []
        for ad in response["ads"] if visit.plays else []:
            probability = visit.true_ctr[ad["ad_id"]]
            clicked = visit.click_draw < probability
            shown.append((probability, clicked))
            self.report("impression", ad)
            if clicked:
                self.report("click", ad)
        return Served(decided_at, response["model_version"], tuple(shown))

    def run(self, name: str, n: int, progress: Progress, logged: LoggedTruth | None = None) -> Phase:
        """n decisions; every played ad reported (impression, and click with its true probability)."""
        wall, cpu = time.monotonic(), self.stack.cpu_seconds()
        visits = self.visits(n)
        clicks, true_probs, versions, paused = 0, [], set(), 0.0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="listener") as pool:
            for start in range(0, n, QUEUE_CHECK_EVERY):
                paused += self.wait_for_queue(QUEUE_HIGH_WATER)
                progress.step(name, start, n)
                for served in pool.map(self.visit, visits[start : start + QUEUE_CHECK_EVERY]):
                    versions.add(served.model_version)
                    for probability, clicked in served.shown:
                        true_probs.append(probability)
                        clicks += clicked
                        if logged is not None:
                            logged.add(served.decided_at, probability, clicked)
        self.flush()
        progress.finish()
        used = {part: seconds - cpu.get(part, 0.0) for part, seconds in self.stack.cpu_seconds().items()}
        return Phase(
            name,
            n,
            clicks,
            float(np.mean(true_probs)) if true_probs else 0.0,
            through_stack=True,
            model_version=", ".join(sorted(versions)),
            load=StackLoad(time.monotonic() - wall, used, paused),
        )

    def report(self, event_type: str, ad: Mapping[str, Any]) -> None:
        """Report an event: the first few as beacons, the rest in Track batches of ``EVENTS_PER_BATCH``."""
        token = _token(ad["tracking"][event_type])
        with self._events:
            beacon = self.beacons_left > 0  # a few through the beacon route, to show it works too
            if beacon:
                self.beacons_left -= 1
            else:
                occurred_at = datetime.now(UTC).isoformat()
                self.pending.append(
                    {"event_id": uuid.uuid4().hex, "type": event_type, "token": token, "occurred_at": occurred_at}
                )
        if beacon:
            function_id, event = self.stack.http_event("GET", f"/v1/events/{event_type}", query=f"t={quote(token)}")
            response = self.stack.invoke(function_id, event)
            if response["statusCode"] != 204:
                raise RuntimeError(f"beacon answered {response['statusCode']}: {response.get('body')}")
        else:
            self.flush(EVENTS_PER_BATCH)

    def flush(self, at_least: int = 1) -> None:
        """Send the pending events to Track if there are *at_least* that many (taken by one caller only), in
        batches Track accepts: other listeners' threads may add events between a report and its flush."""
        with self._events:
            if len(self.pending) < at_least:
                return
            pending, self.pending = self.pending, []
        for start in range(0, len(pending), EVENTS_PER_BATCH):
            self._send(pending[start : start + EVENTS_PER_BATCH])

    def _send(self, pending: list[dict[str, str]]) -> None:
        # Failed entries are retried with the same event_id, as an app does: a busy machine can make the
        # embedded moto outlast Track's queue budget. A rejected event is a bug in the demo, never retried.
        for attempt in range(FLUSH_RETRIES):
            function_id, event = self.stack.http_event("POST", "/v1/events", body=json.dumps({"events": pending}))
            response = self.stack.invoke(function_id, event)
            result = json.loads(response["body"])
            if response["statusCode"] != 202 or result["rejected"]:
                raise RuntimeError(f"Track answered {response['statusCode']}: {response['body'][:500]}")
            failed = {entry["event_id"] for entry in result["results"] if entry["status"] == "failed"}
            if not failed:
                return
            pending = [entry for entry in pending if entry["event_id"] in failed]
            time.sleep(min(0.2 * 2**attempt, 5.0))
        raise RuntimeError(f"Track could not queue {len(pending)} events in {FLUSH_RETRIES} tries")

    def queue_depth(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.stack.physical_name("OutcomesQueue"),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ).get("Attributes", {})
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def wait_for_queue(self, limit: int, timeout: float = 600.0) -> float:
        """Wait until at most *limit* messages are queued; the seconds waited."""
        started = time.monotonic()
        while self.queue_depth() > limit:
            if time.monotonic() > started + timeout:
                raise TimeoutError(f"the outcomes queue stayed above {limit} messages for {timeout:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started


Scorer = Callable[[Sequence[Mapping[str, str]], Sequence[Mapping[str, str]]], np.ndarray]
"""(listener feature dicts, ad feature dicts) -> the score of each pair that a policy ranks by."""


def offline_phase(
    world: World,
    name: str,
    n: int,
    policy: ExplorationPolicy,
    rng: np.random.Generator,
    *,
    scorer: Scorer | None = None,
    consent_share: float | None = None,
    weekday: str | None = None,
    heard: np.ndarray | None = None,
) -> Phase:
    """The serving policy (``policy``, max_ads=1) on fresh listeners, without the stack.

    It ranks by ``scorer``, or by the true probabilities when there is none (the oracle); epsilon-greedy at
    1 is the random policy, at 0 the greedy one. Clicks are drawn from the true probabilities of the shown ads.
    With ``consent_share``, the scorer sees each listener as Decide would serve it (``served_view``: only the
    contextual fields of a listener not consenting, or a minor); the oracle always sees the whole listener.
    The listeners are served on ``server_weekday(weekday)``. ``heard``: the impressions of each world ad the
    scorer's model learned from, for SquareCB's optimism (None: none counted).
    """
    listeners = fresh_listeners(world, n, rng, weekday)
    ads = list(world.ads)
    pairs = ([listener for listener in listeners for _ in ads], ads * n)
    truth = world.click_probabilities(*pairs).reshape(n, len(ads))
    if scorer is not None and consent_share is not None:
        consents = consent_draws(consent_share, n, (int(rng.integers(1 << 31)),))
        views = [served_view(listener, consent)[1] for listener, consent in zip(listeners, consents, strict=True)]
        pairs = ([view for view in views for _ in ads], ads * n)
    scores = truth if scorer is None else np.asarray(scorer(*pairs), dtype=np.float64).reshape(n, len(ads))
    # Only the ads the listener's placement plays, as Decide serves them: the oracle's ceiling included
    playable = {
        placement.value: np.isin(np.arange(len(ads)), world.playable(placement.value)) for placement in Placement
    }
    probabilities = np.array(
        [
            policy.slot_probabilities(
                row,
                playable[listener["placement"]],
                None if heard is None else relative_uncertainty(row, heard),
            )
            for row, listener in zip(scores, listeners, strict=True)
        ]
    )
    # A placement that plays none of the world's ads is served nothing, as Decide serves it: no ad, no click
    served = probabilities.sum(axis=1) > 0
    shown = np.zeros(n)
    shown[served] = truth[np.flatnonzero(served), draw_each(probabilities[served], rng)]
    clicks = int((rng.random(n) < shown).sum())
    return Phase(name, n, clicks, float(shown.mean()), through_stack=False)


def draw_each(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of *probabilities*, each drawn as ``rng.choice(len(row), p=row)`` draws it (the row's
    normalised cumulative sum searched for one uniform), for all rows at once: the same indices from the same
    generator state as a loop of ``rng.choice`` calls, at a fiftieth of its CPU."""
    cumulative = probabilities.cumsum(axis=1)
    cumulative /= cumulative[:, -1:]
    uniforms = rng.random(len(probabilities))
    return np.asarray((cumulative <= uniforms[:, None]).sum(axis=1), dtype=np.int64)


@contextmanager
def demo_stack(
    policy: ExplorationPolicy,
    gamma_scale: float = 0.0,
    on_metrics: MetricsListener | None = None,
    *,
    optimism: float = 0.0,
) -> Iterator[LocalStack]:
    """The demo's stack, Decide configured with *policy*, *gamma_scale* and SquareCB's *optimism*; *on_metrics*
    gets each invocation's EMF documents (by default they are dropped)."""
    stack = LocalStack.start(
        DEFAULT_TEMPLATE,
        stack_name=f"adserve-demo-{uuid.uuid4().hex[:8]}",
        event_sources=True,
        visibility_timeout_override=10,
        moto_process=True,  # moto on the second core: the demo is CPU-bound, and one process runs on one core
        # Every function in processes of its own, as in Lambda: off this process's interpreter lock (the traffic's
        # and the pollers'), Track taking no turns with Decide. Decide in DECIDE_ENVIRONMENTS of them, as Lambda
        # runs concurrent invocations: one environment waiting for its decision record's SendMessage no longer
        # holds up the other listeners' decisions (with one, the stack left a third of its two cores idle).
        function_processes={
            "DecideFunction": DECIDE_ENVIRONMENTS,
            "TrackFunction": 1,
            "RecordFunction": RECORD_ENVIRONMENTS,
        },
        # Swallow each invocation's EMF lines. Not POWERTOOLS_METRICS_DISABLED: Powertools then stops clearing
        # the metric set at flush, and add_metric prints it anyway once a metric holds 100 values.
        on_metrics=on_metrics or (lambda _function, _documents: None),
    )
    saved = {name: os.environ.get(name) for name in [*_DEMO_ENVIRONMENT, *_EXPLORATION_VARIABLES]}
    try:
        os.environ.update(
            _DEMO_ENVIRONMENT
            | {
                "EXPLORATION_POLICY": policy.name,
                "EXPLORATION_GAMMA" if policy.name == "squarecb" else "EXPLORATION_EPSILON": str(policy.parameter),
                "EXPLORATION_GAMMA_SCALE": str(gamma_scale),
                "EXPLORATION_OPTIMISM": str(optimism),
            }
        )
        for function in ("DecideFunction", "TrackFunction", "RecordFunction"):
            stack.reset_function(function)
        yield stack
    finally:
        stack.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_EXPLORATION_VARIABLES = (
    "EXPLORATION_POLICY",
    "EXPLORATION_EPSILON",
    "EXPLORATION_GAMMA",
    "EXPLORATION_GAMMA_SCALE",
    "EXPLORATION_OPTIMISM",
)
_DEMO_ENVIRONMENT = {
    # Decide's budget for its decision-record send, at its ceiling: moto on two shared cores, with several
    # listeners in flight, can answer slower than SQS's 0.25 s default, and a record past the budget is lost
    # (the round would train on fewer decisions than it served).
    "DECISION_LOG_TIMEOUT_SECONDS": "1.0",
    "MODEL_POINTER_CHECK_SECONDS": "5",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def wait_for_version(traffic: Traffic, version: str, timeout: float = 60.0) -> float:
    """Seconds until Decide (warm, not restarted) answers with `version` in every environment: the hot swap.

    Probes one at a time go to the environment idle longest, so ``DECIDE_ENVIRONMENTS`` answers in a row with
    the version come from every one of them."""
    started = time.monotonic()
    probe = traffic.listeners(1)[0]
    in_a_row = 0
    while time.monotonic() - started < timeout:
        if traffic.decide("listener-swap-probe", probe)["model_version"] != version:
            in_a_row = 0
        else:
            in_a_row += 1
            if in_a_row == DECIDE_ENVIRONMENTS:
                return time.monotonic() - started
            continue
        time.sleep(0.5)
    raise TimeoutError(f"Decide still does not serve {version} after {timeout:.0f} s")


def retrain_round(
    logs: S3LogStore,
    models: S3ModelStore,
    config: DemoConfig,
    *,
    window: tuple[datetime, datetime],
    work_dir: Path,
    fallback_model_dir: Path,
    progress: Progress,
) -> tuple[RetrainResult, float]:
    """One of the demo's retrains on the decisions of ``window``, and its wall time: through the deployed Retrain's
    reader (``wiring.retrain``), each partition's objects fetched concurrently. Called once the stack exported the
    functions' environment (see ``run_demo``)."""
    from adserve.training.retraining import RetrainRequest, retrain  # noqa: PLC0415

    started = time.monotonic()
    with PrefetchingReader(logs) as reader:
        outcome = retrain(
            reader,
            models,
            RetrainRequest(
                start=window[0],
                end=window[1],
                as_of=datetime.now(UTC) + REWARD_WINDOW,  # the queue is drained: every outcome is logged
                reward_window=REWARD_WINDOW,
                examples_from=config.examples_from,
                trainer=config.trainer,
                min_rows=config.min_rows,
                min_positives=config.min_positives,
                updated_by="make demo",
            ),
            work_dir=work_dir,
            fallback_model_dir=fallback_model_dir,
            progress=progress,
        )
    return outcome, time.monotonic() - started


def cost_line(phase: Phase, demo_started: float) -> str:
    """A phase's line in the demo's output: the time so far, then ``Phase.cost``'s rate, CPU by process and pause."""
    cost = phase.cost()
    return (
        f"({time.monotonic() - demo_started:.0f} s; {cost['decisions_per_second']:,.0f} decisions/s this round, "
        f"CPU ms per decision {cpu_by_process(cost['cpu_ms_per_decision'])}; "
        f"{cost['paused_for_record_seconds']:.0f} s paused for Record)"
    )


def run_demo(config: DemoConfig, say: Any = print) -> tuple[DemoResult, list[Check], dict[str, Path]]:
    started = time.monotonic()
    world = config.world()
    rng = np.random.default_rng(config.seed)
    progress = Progress()
    exploration = config.exploration()
    say(f"demo world: seed {config.seed}, {len(world.ads)} ads; {exploration}; rounds {config.rounds}")
    with (
        demo_stack(exploration, config.gamma_scale, optimism=config.optimism) as stack,
        TemporaryDirectory(prefix="adserve-demo-") as work_dir,
    ):
        store = CampaignStore(dynamodb_client(endpoint_url=stack.endpoint_url), stack.physical_name("CampaignsTable"))
        for campaign in campaigns_of(world):
            store.put(campaign)
        # Imported once the stack exported the functions' environment: adserve.core.observability builds
        # Powertools' Metrics at import, from POWERTOOLS_METRICS_NAMESPACE among others.
        from adserve.training.retraining import promote  # noqa: PLC0415

        ads_by_id = {as_served(ad)["ad_id"]: ad for ad in world.ads}
        traffic = Traffic(stack, world, rng, ads_by_id, play_rate=config.play_rate, consent_share=config.consent_share)
        s3 = s3_client(endpoint_url=stack.endpoint_url)
        models = S3ModelStore(s3, stack.physical_name("ModelsBucket"))
        logs = S3LogStore(s3, stack.physical_name("LogsBucket"))
        logs_from = datetime.now(UTC)  # the decisions are stamped by Decide, in this process, on this clock
        phases: list[Phase] = []
        steps: list[RetrainStep] = []
        logged = LoggedTruth()
        for number, decisions in enumerate(config.rounds, start=1):
            name = "bootstrap model (logging)" if number == 1 else f"after retrain {number - 1} (logging)"
            phase = traffic.run(name, decisions, progress, logged)
            traffic_end = datetime.now(UTC)  # not after the drain: an idle tail would be all holdout
            phases.append(phase)
            say(f"  {phase.name}: {phase.decisions:,} decisions, CTR {phase.ctr:.4f}  {cost_line(phase, started)}")
            traffic.wait_for_queue(0)
            outcome, retrain_seconds = retrain_round(
                logs,
                models,
                config,
                window=(logs_from, traffic_end),
                work_dir=Path(work_dir) / f"retrain-{number}",
                fallback_model_dir=Path(stack.env["MODEL_DIR"]),
                progress=progress,
            )
            say(f"  retrain {number}: {outcome.message}  ({time.monotonic() - started:.0f} s)")
            if outcome.table:
                say(outcome.table)
            if outcome.version is None or outcome.manifest is None:
                raise RuntimeError(f"retraining published nothing: {outcome.message}")
            if outcome.status not in {"promoted", "challenger"}:
                promote(models, outcome.version, updated_by="make demo (promotion rule not met)")
                say(f"  promoted {outcome.version} by hand for the demo")
            swap = wait_for_version(traffic, outcome.version)
            say(f"  Decide serves {outcome.version} {swap * 1000:.0f} ms after promotion (hot swap, no restart)")
            steps.append(
                retrain_step(outcome.version, outcome.manifest, outcome.dataset, swap, logged, seconds=retrain_seconds)
            )
        retrained = traffic.run("retrained model (fresh traffic)", config.eval_decisions, progress)
        phases.append(retrained)
        say(f"  {retrained.name}: {retrained.decisions:,} decisions  {cost_line(retrained, started)}")
        traffic.wait_for_queue(0)
    phases.append(offline_phase(world, "oracle (true probabilities)", config.offline_decisions, exploration, rng))
    phases.append(offline_phase(world, "random", config.offline_decisions, EpsilonGreedy(1.0), rng))
    final = steps[-1]
    result = DemoResult(
        phases=phases,
        retrains=steps,
        holdout_auc=final.holdout_auc,
        bayes_auc=final.bayes_auc,
        logged_decisions=final.trained_on_decisions,
        off_policy=final.off_policy,
        settings={
            "seed": config.seed,
            "ads": len(world.ads),
            "base_ctr": config.base_ctr,
            "policy": config.policy,
            "epsilon": config.epsilon,
            "gamma": config.gamma,
            "gamma_scale": config.gamma_scale,
            "optimism": config.optimism,
            "play_rate": config.play_rate,
            "rounds": list(config.rounds),
            "eval_decisions": config.eval_decisions,
            "offline_decisions": config.offline_decisions,
            "l2_factors": config.trainer.fit.l2_factors,
        },
    )
    result.total_seconds = time.monotonic() - started
    checks = acceptance(result)
    paths = write_outputs(result, checks, config.out_dir)
    return result, checks, paths


def _rounds(text: str) -> tuple[int, ...]:
    try:
        rounds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated decision counts, got {text!r}") from None
    if not rounds or min(rounds) < 1:
        raise argparse.ArgumentTypeError("every round needs at least one decision")
    return rounds


def _share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}")
    return share


def retrain_step(
    version: str,
    manifest: Mapping[str, Any],
    dataset: Mapping[str, int],
    swap_seconds: float,
    logged: LoggedTruth,
    *,
    seconds: float,
) -> RetrainStep:
    """What one retrain learned from and how it scored, with the Bayes AUC of the same holdout decisions."""
    holdout_start = datetime.fromisoformat(manifest["training_window"]["holdout_start"])
    return RetrainStep(
        version=version,
        trained_on_decisions=int(dataset.get("decisions", 0)),
        holdout_auc=manifest.get("holdout_auc"),
        bayes_auc=logged.bayes_auc_since(holdout_start),
        off_policy=off_policy_of(manifest),
        swap_seconds=round(swap_seconds, 3),
        seconds=round(seconds, 1),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few thousand decisions)")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory")
    parser.add_argument(
        "--rounds", type=_rounds, help="decisions per logging round, comma-separated (a retrain after each)"
    )
    parser.add_argument("--eval-decisions", type=int, help="decisions after the last retrain")
    parser.add_argument("--policy", choices=["epsilon_greedy", "squarecb"], help="exploration policy of every phase")
    parser.add_argument("--epsilon", type=float, help="epsilon_greedy's exploration rate")
    parser.add_argument("--gamma", type=float, help="squarecb's gamma (with --gamma-scale, its cap)")
    parser.add_argument(
        "--gamma-scale", type=float, help="Decide's EXPLORATION_GAMMA_SCALE: gamma grows with each model's logs"
    )
    parser.add_argument(
        "--optimism", type=float, help="Decide's EXPLORATION_OPTIMISM: squarecb explores what a model heard little of"
    )
    parser.add_argument("--play-rate", type=float, help="chance the simulated app plays a chosen ad")
    parser.add_argument("--seed", type=int, help="the simulated world's seed")
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"also write the summary, with the machine, to bench/results/{DEMO_RUN.name} and README's demo-run table",
    )
    parser.add_argument(
        "--consent-share",
        type=_share,
        help="share of listeners consenting to personalisation, 0-1 (default 1; the others are served contextually)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = DemoConfig.quick(args.out) if args.quick else DemoConfig(out_dir=args.out)
    overrides = {
        "rounds": args.rounds,
        "eval_decisions": args.eval_decisions,
        "policy": args.policy,
        "epsilon": args.epsilon,
        "gamma": args.gamma,
        "gamma_scale": args.gamma_scale,
        "optimism": args.optimism,
        "play_rate": args.play_rate,
        "seed": args.seed,
        "consent_share": args.consent_share,
    }
    config = dataclasses.replace(config, **{name: value for name, value in overrides.items() if value is not None})
    result, checks, paths = run_demo(config)
    print()  # noqa: T201 - CLI output
    print(table(result))  # noqa: T201
    print(f"holdout AUC {result.holdout_auc}  Bayes AUC {result.bayes_auc}  OPE {result.off_policy}")  # noqa: T201
    for check in checks:
        print(f"{'PASS' if check.passed else 'MISS'}  {check.name}: {check.detail}")  # noqa: T201
    for name, path in paths.items():
        print(f"{name}: {path.resolve()}")  # noqa: T201
    print(f"total time: {result.total_seconds:.0f} s")  # noqa: T201
    if args.publish:
        published = json.loads(paths["summary"].read_text()) | {"machine": environment.describe()}
        print(run_markdown(publish(published, DEMO_RUN, "demo-run", run_markdown)))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
