"""Figure 5: the peer, Vowpal Wabbit ``cb_explore_adf``, on the same features and candidate counts.

Fairness: our ad rows are encoded once when the catalog loads, so VW's action examples are parsed (and their
features hashed) once per ad too, and kept; per request VW pays for what we pay for: turning the listener's
features into its input (the shared example, parsed from its text line) plus the model call over it and the
kept actions, which for ``cb_explore_adf`` already returns the exploration pmf (the same pmf as predicting on
every line's text, which re-parsed every ad per request: 3-12x slower). VW is trained briefly on synthetic logged
bandit data so that its weights are not empty.
"""

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from typing import Any

from adserve.campaigns.model import Campaign
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import ad_features
from adserve.decisions.service import listener_features
from adserve.models.features import AD_FIELDS, LISTENER_FIELDS
from adserve.privacy.consent import ServingMode
from vowpalwabbit import Example, Workspace

from bench import catalogs
from bench.decide_latency import EPSILON, SIZES
from bench.stats import iterations_for, measure

VW_ARGS = f"--cb_explore_adf --epsilon {EPSILON} -q LA --quiet"
TRAINING_EXAMPLES = 3000
ACTIONS_PER_TRAINING_EXAMPLE = 10
_UNSAFE = str.maketrans({" ": "_", ":": "_", "|": "_"})


def _features(fields: tuple[str, ...], values: Mapping[str, str]) -> str:
    return " ".join(f"{field}={(values.get(field) or '').translate(_UNSAFE)}" for field in fields)


def shared_line(features: Mapping[str, str]) -> str:
    return f"shared |Listener {_features(LISTENER_FIELDS, features)}"


def ad_line(features: Mapping[str, str]) -> str:
    """An action line from an ad's features (``AD_FIELDS``)."""
    return f"|Ad {_features(AD_FIELDS, features)}"


def action_line(campaign: Campaign) -> str:
    creative = campaign.creatives[0]
    return ad_line(ad_features(campaign, creative.ad_id, creative.format.value))


def _synthetic_listener(rng: random.Random) -> dict[str, str]:
    return {
        "country": rng.choice(("SE", *catalogs.OTHER_COUNTRIES)),
        "device": rng.choice(("mobile", *catalogs.OTHER_DEVICES)),
        "age_bucket": rng.choice(("25-34", *catalogs.OTHER_AGES)),
        "content_type": rng.choice(("music", "podcast", "radio")),
        "genre": rng.choice(("pop", *catalogs.OTHER_GENRES)),
        "placement": catalogs.PLACEMENT,
        "hour_of_day": str(rng.randrange(24)),
        "day_of_week": str(rng.randrange(7)),
    }


def train(workspace: Workspace, campaigns: list[Campaign], seed: int = 11) -> None:
    """Logged uniform-random choices; clicks are likelier when the category matches the listener's genre."""
    rng = random.Random(seed)
    lines = [action_line(c) for c in campaigns]
    for _ in range(TRAINING_EXAMPLES):
        listener = _synthetic_listener(rng)
        shown = rng.sample(range(len(campaigns)), ACTIONS_PER_TRAINING_EXAMPLE)
        chosen = rng.randrange(len(shown))
        campaign = campaigns[shown[chosen]]
        affinity = 0.15 if (len(campaign.category) + len(listener["genre"])) % 3 == 0 else 0.02
        cost = -1.0 if rng.random() < affinity else 0.0
        example = [shared_line(listener)]
        for position, index in enumerate(shown):
            label = f"0:{cost}:{1.0 / len(shown)} " if position == chosen else ""
            example.append(label + lines[index])
        workspace.learn(example)


def parsed_actions(workspace: Workspace, campaigns: list[Campaign]) -> list[Example]:
    """The campaigns' examples, parsed once (as our catalog encodes its ads once) and kept for every request: a
    placeholder shared example (a multi-line parse needs one) and the actions after it. ``workspace.finish_example``
    releases the whole list (VW refuses a single example of a multi-line learner)."""
    parsed: list[Example] = workspace.parse([shared_line({}), *(action_line(c) for c in campaigns)])
    return parsed


def decide_vw(workspace: Workspace, request: DecisionRequest, parsed: list[Example]) -> list[float]:
    """One request: the shared example from the listener's features, then predict over the kept actions."""
    line = shared_line(listener_features(request, datetime.now(UTC), ServingMode.PERSONALISED))
    shared = Example(workspace, line, workspace.get_label_type())
    pmf: list[float] = workspace.predict([shared, *parsed[1:]])
    return pmf


def run(quick: bool = False) -> dict[str, Any]:
    workspace = Workspace(VW_ARGS)
    try:
        train(workspace, catalogs.campaigns(max(SIZES), seed=5))
        request = DecisionRequest.model_validate(catalogs.decision_request_document())
        results: dict[str, Any] = {"vw_version": version("vowpalwabbit"), "args": VW_ARGS, "sizes": {}}
        for size in SIZES:
            parsed = parsed_actions(workspace, catalogs.campaigns(size))
            if len(decide_vw(workspace, request, parsed)) != size:
                raise RuntimeError("VW returned a pmf of the wrong length")
            iterations = iterations_for(size, 2000, quick)
            warmup = max(iterations // 10, 20)
            summary = measure(partial(decide_vw, workspace, request, parsed), iterations, warmup)
            workspace.finish_example(parsed)
            results["sizes"][str(size)] = {"vw_predict": summary.to_dict()}
        results["trained_examples"] = TRAINING_EXAMPLES
        return results
    finally:
        workspace.finish()
