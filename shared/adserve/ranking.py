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
    """Fill up to `slots` ranks; fewer when advertisers run out."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError("epsilon must be within [0, 1]")
    advertiser_codes = np.unique(np.asarray(advertisers), return_inverse=True)[1]
    available = np.ones(len(expected_values), dtype=bool)
    choices: list[Choice] = []
    while len(choices) < slots and available.any():
        probabilities = slot_probabilities(expected_values, available, epsilon)
        index = _draw(probabilities, rng)
        choices.append(Choice(index=index, rank=len(choices) + 1, propensity=float(probabilities[index])))
        available &= advertiser_codes != advertiser_codes[index]
    return choices


def _draw(probabilities: np.ndarray, rng: random.Random) -> int:
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(probabilities) - 1)
