"""The serving policy: exploration over expected value, one ad per advertiser, exact propensities.

Each slot of the ad break is filled in turn from the exploration policy's distribution over the ads still
available (``ExplorationPolicy.slot_probabilities``). An ad's propensity is the probability of it being
chosen for its slot given the ads above it, which is what inverse-propensity estimators need. Once an ad is
chosen, every other ad of its advertiser leaves the pool. Two policies, selected per deployment:

- ``EpsilonGreedy``: the greedy ad with probability 1 - epsilon, a uniformly random one with epsilon. It
  spends epsilon of the traffic on ads the model already knows to be bad.
- ``SquareCB`` (Foster & Rakhlin 2020, VW's ``--squarecb``): every other ad a gets 1 / (K + gamma x gap_a),
  the greedy ad the rest, where gap_a = (best value - value of a) / best value is the value gap relative
  to the best (so gamma needs no rescaling per currency or CTR level). Ads the model cannot tell from the
  best are explored like uniform, ads it is sure are bad hardly at all; gamma = 0 is uniform.

  With ``optimism`` and each candidate's ``uncertainty`` (``relative_uncertainty``: how little the model
  heard of that ad), the gap is measured from an upper confidence bound of the ad's value instead of its
  estimate: gap_a = max(0, gap_a - optimism x value_a / best x uncertainty_a). One gamma trusts every ad's
  estimate alike, so an ad that looked bad in its first few hundred impressions is hardly served again
  and never corrected (README, "Exploring what the model heard little of"); an ad no model has heard yet is
  explored as if it might be the best. The greedy ad is still the best estimate.

Ties go to the lowest index, so the distribution is a function of the values alone and exact.

Each policy computes its distribution twice, to the same bits: on numpy arrays, for OPE's replays and large
slates, and on Python lists (``listed_slot_probabilities``) for a slate of a few candidates, where numpy's
per-call overhead was half of the score path's time. Both use IEEE doubles in the same order; the one sum,
SquareCB's greedy share, is numpy's pairwise sum (``_pairwise_sum``). A test checks both on random slates.
"""

import bisect
import itertools
import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from adserve.outcomes.decision_records import LoggedPolicy, PolicyName


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    rank: int
    propensity: float


class ExplorationPolicy(Protocol):
    @property
    def name(self) -> PolicyName: ...

    @property
    def parameter(self) -> float:
        """The policy's one setting (epsilon, gamma): with the name, all that replays it offline."""
        ...

    def slot_probabilities(
        self, expected_values: np.ndarray, available: np.ndarray, uncertainty: np.ndarray | None = None
    ) -> np.ndarray:
        """The distribution over candidates for one slot; zero for unavailable ones, sums to 1.

        ``uncertainty``: each candidate's ``relative_uncertainty``, for a policy with optimism (None: none).
        """
        ...

    def listed_slot_probabilities(
        self, expected_values: list[float], available: list[bool], uncertainty: list[float] | None = None
    ) -> list[float]:
        """``slot_probabilities`` on Python lists, to the bit (module docstring)."""
        ...

    def logged(self) -> LoggedPolicy: ...

    def least_chosen_probability(self, count: int) -> float:
        """The smallest probability with which the first slot chooses any ad of *count* candidates: a first
        choice logged with less was not logged by this policy (a corrupt or foreign record)."""
        ...


def _greedy(expected_values: np.ndarray, available: np.ndarray, count: int | np.integer[Any]) -> int:
    """The first best available candidate; with all ``count`` of them available (a slate's first slot), the
    values' own argmax, without the masked copy (the same index: the copy would hold the same values)."""
    if count == len(expected_values):
        return int(expected_values.argmax())
    return int(np.where(available, expected_values, -np.inf).argmax())


def _listed_greedy(expected_values: list[float], available: list[bool], count: int) -> int:
    """``_greedy`` on lists: the first best available candidate (the values are finite, as scores x values are)."""
    if count == len(expected_values):
        return expected_values.index(max(expected_values))
    masked = [value if free else -math.inf for value, free in zip(expected_values, available, strict=True)]
    return masked.index(max(masked))


def _pairwise_sum(values: list[float]) -> float:
    """``ndarray.sum`` of up to 128 doubles, to the bit: numpy's pairwise summation, which below its block of 128
    adds sequentially under 8 values and in 8 interleaved partial sums from 8 on."""
    count = len(values)
    if count < 8:
        total = 0.0
        for value in values:
            total += value
        return total
    if count > 128:
        raise ValueError("numpy sums more than 128 values by halves; not reproduced here")
    partial = values[:8]
    whole = count - count % 8
    for start in range(8, whole, 8):
        partial = [left + right for left, right in zip(partial, values[start : start + 8], strict=True)]
    first, second, third, fourth, fifth, sixth, seventh, eighth = partial
    total = ((first + second) + (third + fourth)) + ((fifth + sixth) + (seventh + eighth))
    for value in values[whole:]:
        total += value
    return total


@dataclass(frozen=True, slots=True)
class EpsilonGreedy:
    epsilon: float
    name: PolicyName = "epsilon_greedy"

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError("epsilon must be within [0, 1]")

    @property
    def parameter(self) -> float:
        return self.epsilon

    def slot_probabilities(
        self, expected_values: np.ndarray, available: np.ndarray, uncertainty: np.ndarray | None = None
    ) -> np.ndarray:
        del uncertainty  # epsilon-greedy explores uniformly, whatever the model heard of each ad
        count = np.count_nonzero(available)
        if count == 0:
            return np.zeros(len(expected_values), dtype=np.float64)
        probabilities = available * (self.epsilon / count)  # exactly epsilon / count where available, else 0.0
        probabilities[_greedy(expected_values, available, count)] += 1.0 - self.epsilon
        return probabilities

    def listed_slot_probabilities(
        self, expected_values: list[float], available: list[bool], uncertainty: list[float] | None = None
    ) -> list[float]:
        del uncertainty
        count = sum(available)
        if count == 0:
            return [0.0] * len(expected_values)
        share = self.epsilon / count
        probabilities = [share if free else 0.0 for free in available]
        probabilities[_listed_greedy(expected_values, available, count)] += 1.0 - self.epsilon
        return probabilities

    def logged(self) -> LoggedPolicy:
        return LoggedPolicy(name=self.name, epsilon=self.epsilon)

    def least_chosen_probability(self, count: int) -> float:
        """epsilon / count, a random pick's; without exploration only the greedy ad is ever chosen, at 1."""
        return self.epsilon / count if self.epsilon > 0.0 else 1.0


@dataclass(frozen=True, slots=True)
class SquareCB:
    gamma: float
    optimism: float = 0.0
    """How many standard errors above its estimate an ad's value may be (module docstring); 0: none."""
    name: PolicyName = "squarecb"

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma < float("inf"):
            raise ValueError("gamma must be finite and not negative")
        if not 0.0 <= self.optimism < float("inf"):
            raise ValueError("optimism must be finite and not negative")

    @property
    def parameter(self) -> float:
        return self.gamma

    def slot_probabilities(
        self, expected_values: np.ndarray, available: np.ndarray, uncertainty: np.ndarray | None = None
    ) -> np.ndarray:
        count = np.count_nonzero(available)
        probabilities = np.zeros(len(expected_values), dtype=np.float64)
        if count == 0:
            return probabilities
        greedy = _greedy(expected_values, available, count)
        best = float(expected_values[greedy])
        if best > 0.0:
            gaps = (best - expected_values[available]) / best
            if self.optimism and uncertainty is not None:
                gaps = _optimistic(gaps, expected_values[available] / best, uncertainty[available], self.optimism)
        else:
            gaps = np.zeros(count)
        probabilities[available] = 1.0 / (count + self.gamma * gaps)
        probabilities[greedy] = 0.0
        probabilities[greedy] = 1.0 - probabilities.sum()
        return probabilities

    def least_chosen_probability(self, count: int) -> float:
        """1 / (count + gamma): a gap is at most 1 (values are not negative) and optimism only narrows it; the
        greedy ad takes what the others leave, at least 1 / count."""
        return 1.0 / (count + self.gamma)

    def listed_slot_probabilities(
        self, expected_values: list[float], available: list[bool], uncertainty: list[float] | None = None
    ) -> list[float]:
        count = sum(available)
        if count == 0:
            return [0.0] * len(expected_values)
        greedy = _listed_greedy(expected_values, available, count)
        best, gamma, optimism = expected_values[greedy], self.gamma, self.optimism
        if best <= 0.0:
            uniform = 1.0 / count  # the arrays' 1 / (count + gamma x 0), to the bit
            probabilities = [uniform if free else 0.0 for free in available]
        elif not optimism or uncertainty is None:
            probabilities = [
                1.0 / (count + gamma * ((best - value) / best)) if free else 0.0
                for value, free in zip(expected_values, available, strict=True)
            ]
        else:
            probabilities = [
                1.0 / (count + gamma * _listed_optimistic((best - value) / best, value / best, spread, optimism))
                if free
                else 0.0
                for value, free, spread in zip(expected_values, available, uncertainty, strict=True)
            ]
        probabilities[greedy] = 0.0
        probabilities[greedy] = 1.0 - _pairwise_sum(probabilities)
        return probabilities

    def logged(self) -> LoggedPolicy:
        return LoggedPolicy(name=self.name, gamma=self.gamma, optimism=self.optimism or None)


def _optimistic(gaps: np.ndarray, relative_values: np.ndarray, uncertainty: np.ndarray, optimism: float) -> np.ndarray:
    """The gaps to each ad's upper bound, value x (1 + optimism x uncertainty): never below 0, and 0 for an ad the
    model never heard (infinite uncertainty), whatever its estimate."""
    unheard = np.isinf(uncertainty)
    bonus = optimism * relative_values * np.where(unheard, 0.0, uncertainty)
    return np.where(unheard, 0.0, np.maximum(gaps - bonus, 0.0))


def _listed_optimistic(gap: float, relative_value: float, uncertainty: float, optimism: float) -> float:
    """``_optimistic`` for one candidate."""
    return 0.0 if math.isinf(uncertainty) else max(gap - optimism * relative_value * uncertainty, 0.0)


def relative_uncertainty(scores: np.ndarray, heard: np.ndarray) -> np.ndarray:
    """Each candidate's relative standard error of its click rate, as ``heard`` impressions of it would give a
    binomial estimate at its score: sqrt((1 - ctr) / (ctr x heard)); infinite for an ad never heard.

    ``heard``: the impressions of each candidate's ad the serving model learned from (``HeardAds.of``).
    """
    ctr = np.clip(scores, 1e-6, 1.0 - 1e-6)
    with np.errstate(divide="ignore"):
        return np.asarray(np.sqrt((1.0 - ctr) / (ctr * heard)))


POLICY_NAMES: Final[tuple[PolicyName, ...]] = ("epsilon_greedy", "squarecb")
"""Index = the policy's code in compact arrays (``training.dataset.SlotOne.policy_codes``)."""


GREEDY: Final = EpsilonGreedy(0.0)
"""The best ad every time (ties to the first): what a model is judged by offline, and no exploration."""


def exploration_policy(name: PolicyName, parameter: float, optimism: float = 0.0) -> ExplorationPolicy:
    """The policy of that name with its one setting (and SquareCB's optimism): what serving builds from settings
    and OPE from logs."""
    if name == "squarecb":
        return SquareCB(parameter, optimism)
    return EpsilonGreedy(parameter)


def growing_gamma(scale: float, logged_decisions: int) -> float:
    """SquareCB's gamma for a model learned from ``logged_decisions``: ``scale`` x sqrt(decisions).

    The batched SquareCB of Simchi-Levi & Xu (FALCON, 2020) retrains in epochs and sets gamma to grow as the
    square root of the data the model learned from: a model trained on little explores widely (at 0, the
    bootstrap, uniformly), and exploration shrinks as the model's errors do.
    """
    if scale < 0.0 or logged_decisions < 0:
        raise ValueError("scale and logged decisions must not be negative")
    return scale * float(np.sqrt(logged_decisions))


def served_exploration(
    configured: ExplorationPolicy, gamma_scale: float, logged_decisions: int | None, *, heard_counted: bool
) -> ExplorationPolicy:
    """The policy a model serves with: ``configured``, or with a ``gamma_scale`` SquareCB at the growing gamma.

    ``logged_decisions`` is the model's manifest count (``CtrModel.logged_decisions``): how many of this
    deployment's logged decisions it learned from. With a scale, gamma = min(configured gamma, scale x
    sqrt(count)), so the configured gamma is the cap; the bootstrap model (count 0) serves uniformly, as the
    first epoch of FALCON does and as the offline replays measured; a model whose manifest has no count (one
    published before the count was written) serves the configured gamma it was served with before. A model
    that did not count the impressions of each ad (``heard_counted``, its manifest's ``heard_ads``) serves
    without SquareCB's optimism. Decide and the offline replays (``devstack.demo_sweep``) both derive their
    policy here, once per model.
    """
    if not isinstance(configured, SquareCB):
        return configured
    optimism = configured.optimism if heard_counted else 0.0
    gamma = configured.gamma
    if gamma_scale != 0.0 and logged_decisions is not None:
        gamma = min(gamma, growing_gamma(gamma_scale, logged_decisions))
    return SquareCB(gamma, optimism)


def logged_policy(logged: LoggedPolicy) -> ExplorationPolicy:
    """The policy that logged a decision, to replay its distribution exactly."""
    parameter = logged.gamma if logged.name == "squarecb" else logged.epsilon
    if parameter is None:
        raise ValueError(f"a logged {logged.name} policy without its parameter")
    return exploration_policy(logged.name, parameter, logged.optimism or 0.0)


_running_sum = np.add.accumulate
"""``ndarray.cumsum`` (the same ufunc, the same sequential sums) without its generic axis handling: half its cost
on a slate's few dozen candidates."""


def choose_slate(
    expected_values: np.ndarray,
    advertisers: Sequence[Hashable] | np.ndarray,
    slots: int,
    policy: ExplorationPolicy,
    rng: random.Random,
    *,
    uncertainty: np.ndarray | None = None,
    trace: list[np.ndarray] | None = None,
) -> list[Choice]:
    """Fill up to `slots` ranks from `policy.slot_probabilities`; fewer when advertisers run out.

    ``advertisers`` names each candidate's advertiser: any hashable, or integer codes in an array (Decide's
    catalog index holds them so). ``uncertainty``: each candidate's, for a policy with optimism. ``trace``, when
    given (explain), receives the distribution of each slot, in rank order.
    """
    if (
        len(expected_values) <= FEW_CANDIDATES
        and expected_values.dtype == np.float64
        and (uncertainty is None or uncertainty.dtype == np.float64)
    ):
        return _listed_slate(
            expected_values.tolist(),
            advertisers.tolist() if isinstance(advertisers, np.ndarray) else list(advertisers),
            slots,
            policy,
            rng,
            uncertainty=None if uncertainty is None else uncertainty.tolist(),
            trace=trace,
        )
    return _array_slate(expected_values, advertisers, slots, policy, rng, uncertainty=uncertainty, trace=trace)


FEW_CANDIDATES: Final = 24
"""Up to this many candidates, a slate is chosen on Python lists (``_listed_slate``), above on numpy arrays: the
lists' cost grows with the candidates, numpy's is mostly per call (``make bench``, "score path", at 10 and 50)."""


def _array_slate(
    expected_values: np.ndarray,
    advertisers: Sequence[Hashable] | np.ndarray,
    slots: int,
    policy: ExplorationPolicy,
    rng: random.Random,
    *,
    uncertainty: np.ndarray | None,
    trace: list[np.ndarray] | None,
) -> list[Choice]:
    """``choose_slate`` on numpy arrays."""
    if isinstance(advertisers, np.ndarray):
        advertiser_codes = advertisers
    else:
        code_of: dict[Hashable, int] = {}
        advertiser_codes = np.fromiter(
            (code_of.setdefault(advertiser, len(code_of)) for advertiser in advertisers),
            dtype=np.int64,
            count=len(advertisers),
        )
    available = np.ones(len(expected_values), dtype=bool)
    remaining = len(expected_values)
    choices: list[Choice] = []
    draw = rng.random
    while remaining and len(choices) < slots:
        probabilities = policy.slot_probabilities(expected_values, available, uncertainty)
        if trace is not None:
            trace.append(probabilities)
        cumulative = _running_sum(probabilities)
        # side="right" never lands on a zero-probability (unavailable) candidate, nor past the last candidate
        # with a probability (zeros add nothing to the sum): only u x total rounded up to the total can.
        # Python floats from .item(): the same doubles as numpy's scalars, without building those.
        index = int(cumulative.searchsorted(draw() * cumulative.item(-1), side="right"))
        if index == len(cumulative):
            index = int(np.flatnonzero(probabilities)[-1])
        choices.append(Choice(index, len(choices) + 1, probabilities.item(index)))
        if len(choices) < slots:  # the last slot's pool is never asked for
            available &= advertiser_codes != advertiser_codes.item(index)
            remaining = int(np.count_nonzero(available))  # not .any(): a ufunc reduction, 3x slower
    return choices


def _listed_slate(
    expected_values: list[float],
    advertisers: Sequence[Hashable],
    slots: int,
    policy: ExplorationPolicy,
    rng: random.Random,
    *,
    uncertainty: list[float] | None,
    trace: list[np.ndarray] | None,
) -> list[Choice]:
    """``_array_slate`` on Python lists: the same draws, choices and propensities, to the bit."""
    available = [True] * len(expected_values)
    remaining = len(expected_values)
    choices: list[Choice] = []
    draw = rng.random
    while remaining and len(choices) < slots:
        probabilities = policy.listed_slot_probabilities(expected_values, available, uncertainty)
        if trace is not None:
            trace.append(np.array(probabilities, dtype=np.float64))
        cumulative = list(itertools.accumulate(probabilities))  # sequential sums, as numpy's accumulate
        index = bisect.bisect_right(cumulative, draw() * cumulative[-1])  # searchsorted(side="right")
        if index == len(cumulative):
            index = max(position for position, probability in enumerate(probabilities) if probability)
        choices.append(Choice(index, len(choices) + 1, probabilities[index]))
        if len(choices) < slots:
            chosen = advertisers[index]
            available = [free and advertiser != chosen for free, advertiser in zip(available, advertisers, strict=True)]
            remaining = sum(available)
    return choices
