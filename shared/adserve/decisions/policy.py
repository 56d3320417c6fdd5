"""The serving policy: epsilon-greedy over expected value, one ad per advertiser, exact propensities.

Each slot of the ad break is filled in turn. With probability 1 - epsilon the slot takes the ad with the
highest expected value (predicted CTR x value) still available; with probability epsilon it takes an
available ad uniformly at random. An ad's propensity is the probability of it being chosen for its slot
given the ads above it, which is what inverse-propensity estimators need. Once an ad is chosen, every other
ad of its advertiser leaves the pool.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    rank: int
    propensity: float


def slot_probabilities(expected_values: np.ndarray, available: np.ndarray, epsilon: float) -> np.ndarray:
    """The policy's distribution over candidates for one slot; zero for unavailable ones, sums to 1."""
    count = int(available.sum())
    probabilities = np.zeros(len(expected_values), dtype=np.float64)
    if count == 0:
        return probabilities
    probabilities[available] = epsilon / count
    greedy = int(np.argmax(np.where(available, expected_values, -np.inf)))
    probabilities[greedy] += 1.0 - epsilon
    return probabilities


def choose_slate(
    expected_values: np.ndarray,
    advertisers: Sequence[str],
    slots: int,
    epsilon: float,
    rng: random.Random,
) -> list[Choice]:
    """Fill up to `slots` ranks; fewer when advertisers run out.

    Draws exactly from `slot_probabilities` without building it: explore (probability epsilon) picks an
    available ad uniformly, otherwise the greedy one; the propensity is the same closed form.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError("epsilon must be within [0, 1]")
    code_of: dict[str, int] = {}
    advertiser_codes = np.fromiter(
        (code_of.setdefault(advertiser, len(code_of)) for advertiser in advertisers),
        dtype=np.int64,
        count=len(advertisers),
    )
    available = np.ones(len(expected_values), dtype=bool)
    choices: list[Choice] = []
    while len(choices) < slots:
        candidates = np.flatnonzero(available)
        if candidates.size == 0:
            break
        greedy = int(candidates[np.argmax(expected_values[candidates])])
        explore = rng.random() < epsilon
        index = int(candidates[rng.randrange(candidates.size)]) if explore else greedy
        propensity = epsilon / candidates.size + (1.0 - epsilon) * (index == greedy)
        choices.append(Choice(index=index, rank=len(choices) + 1, propensity=propensity))
        available &= advertiser_codes != advertiser_codes[index]
    return choices
