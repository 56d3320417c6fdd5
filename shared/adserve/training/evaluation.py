"""Offline evaluation on the time holdout: prediction quality and off-policy estimates of click rate.

*Prediction quality* of the new model (and of the champion, on the rows it did not learn from): AUC, log loss and
expected calibration error (ECE) over equal-mass bins, which suit a ~2% CTR better than equal-width ones.

The champion is judged only on the holdout decisions after everything it learned from (``unseen_by``): one
refitted on every row, or trained on an earlier window of a sliding range, learned from some of them, and would
look better there than it is. The promotion rule then compares the new policy with it on those decisions alone.

*Off-policy estimates*, on slot 1 of every holdout decision. The logging policy put ad a first with
propensity mu = p_log(a | x) and the listener clicked (r = 1) or not. A candidate policy is the serving
policy (``decisions.policy``: the decision's logged exploration policy, epsilon-greedy or SquareCB with its
logged setting, over score x value; greedy where that policy was uniform, ``replayed_policy``) with the candidate
model's scores; pi = p_new(a | x) is its probability
of the same first ad and w = pi / mu. With a reward model r_hat (the new model's predicted CTR, for every
policy evaluated):

    IPS   = mean(w * r)
    SNIPS = sum(w * r) / sum(w)
    DR    = mean(sum_b p_new(b | x) * r_hat(x, b) + w * (r - r_hat(x, a)))

IPS is unbiased when every ad has mu > 0 (epsilon > 0 or any finite gamma guarantees it); SNIPS trades a
small bias for much less variance; DR is unbiased if either the propensities or the reward model are right.

*Cross-fitted* (``Fold``, ``TrainerConfig.cross_fit_folds``), the new policy is estimated on every decision of the
window, each fold's by a fit that never learned from it, and every decision is replayed at the exploration that
logged most of the latest fold (``prevailing_setting``): the window spans the explorations of earlier models, and a
holdout estimate is at the exploration of the latest decisions.
"""

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal, Protocol

import numpy as np

from adserve.decisions.policy import (
    GREEDY,
    POLICY_NAMES,
    ExplorationPolicy,
    exploration_policy,
    relative_uncertainty,
)
from adserve.models.ctr_model import Trained, Windowed
from adserve.models.heard_ads import HeardAds
from adserve.training.dataset import Examples, SlotOne
from adserve.training.metrics import log_loss, roc_auc

Estimator = Literal["ips", "snips", "dr"]
ESTIMATORS: Final[tuple[Estimator, ...]] = ("ips", "snips", "dr")
SCORING_CHUNK: Final = 32_768
"""Rows per onnxruntime call in evaluation: its intermediates are ~50 bytes x 13 fields a row, so this
bounds them near 20 MB instead of growing with the holdout."""


class Scorer(Protocol):
    @property
    def version(self) -> str: ...

    def predict(self, indices: np.ndarray) -> np.ndarray: ...


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """sum_b (n_b / n) * |mean label - mean prediction| over `bins` bins of (nearly) equal row counts."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    if y.size == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for part in np.array_split(order, min(bins, y.size)):
        total += part.size * abs(float(y[part].mean()) - float(p[part].mean()))
    return total / y.size


@dataclass(frozen=True)
class HoldoutMetrics:
    rows: int
    positives: int
    auc: float | None
    log_loss: float | None
    ece: float | None

    @classmethod
    def of(cls, labels: np.ndarray, probs: np.ndarray) -> "HoldoutMetrics":
        positives = int(labels.sum())
        if labels.size == 0:
            return cls(0, 0, None, None, None)
        auc = roc_auc(labels, probs) if 0 < positives < labels.size else None
        return cls(
            rows=int(labels.size),
            positives=positives,
            auc=None if auc is None else round(auc, 6),
            log_loss=round(log_loss(labels, probs), 6),
            ece=round(expected_calibration_error(labels, probs), 6),
        )


@dataclass(frozen=True)
class SlotOneTerms:
    """Per decision: the evaluated policy's probability of the logged first ad, and what DR adds."""

    target_probability: np.ndarray
    logging_propensity: np.ndarray
    rewards: np.ndarray
    direct: np.ndarray
    """sum over candidates of the evaluated policy's probability x the reward model's prediction."""
    predicted_logged: np.ndarray
    """The reward model's prediction for the logged first ad."""

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.target_probability / self.logging_propensity)

    def select(self, mask: np.ndarray) -> "SlotOneTerms":
        """The terms of some decisions (e.g. one serving mode's)."""
        return SlotOneTerms(
            target_probability=self.target_probability[mask],
            logging_propensity=self.logging_propensity[mask],
            rewards=self.rewards[mask],
            direct=self.direct[mask],
            predicted_logged=self.predicted_logged[mask],
        )


def ips(terms: SlotOneTerms) -> float:
    if terms.rewards.size == 0:
        return float("nan")
    return float(np.mean(terms.weights * terms.rewards))


def snips(terms: SlotOneTerms) -> float:
    total = float(terms.weights.sum())
    return float(np.sum(terms.weights * terms.rewards) / total) if total > 0 else float("nan")


def doubly_robust(terms: SlotOneTerms) -> float:
    if terms.rewards.size == 0:
        return float("nan")
    return float(np.mean(terms.direct + terms.weights * (terms.rewards - terms.predicted_logged)))


ESTIMATOR_FUNCTIONS: Final = {"ips": ips, "snips": snips, "dr": doubly_robust}


def standard_errors(terms: SlotOneTerms) -> dict[Estimator, float]:
    """Each estimator's standard error: IPS and DR as means of per-decision terms, SNIPS by the delta method.

    A handful of heavily weighted clicks can carry an estimate; the error says how far to trust it.
    """
    n = terms.rewards.size
    if n < 2:
        return {name: float("nan") for name in ESTIMATORS}
    weights = terms.weights
    ips_terms = weights * terms.rewards
    dr_terms = terms.direct + weights * (terms.rewards - terms.predicted_logged)
    total = float(weights.sum())
    snips_value = float(ips_terms.sum()) / total if total > 0 else float("nan")
    return {
        "ips": float(ips_terms.std(ddof=1) / np.sqrt(n)),
        "snips": float(np.sqrt(np.sum((weights * (terms.rewards - snips_value)) ** 2)) / total),
        "dr": float(dr_terms.std(ddof=1) / np.sqrt(n)),
    }


_SCORE_BLIND: Final = frozenset({("squarecb", 0.0), ("epsilon_greedy", 1.0)})
"""Settings at which a policy ignores the scores: every candidate equally likely."""


def replayed_policy(logged: ExplorationPolicy) -> ExplorationPolicy:
    """The policy a model is replayed with on a decision *logged* by a policy: that same policy, so a candidate and
    the champion are estimated at the exploration that logged the holdout; but a decision logged uniformly (the
    bootstrap model's round with ``ExplorationGammaScale`` set: SquareCB at gamma 0) replays greedy. Replayed
    uniformly, every model would be the logging policy itself, its estimate the observed rate whatever it learned,
    and no candidate could ever beat the rule's margin; uniform logs estimate the greedy choice best (weights at
    most the number of candidates), and the model is then served close to greedy."""
    return GREEDY if (logged.name, logged.parameter) in _SCORE_BLIND else logged


def slot_one_terms(
    slot: SlotOne,
    scores: np.ndarray,
    reward_predictions: np.ndarray,
    heard: np.ndarray | None = None,
    *,
    replay_at: "LoggedSetting | None" = None,
) -> SlotOneTerms:
    """Replay the serving policy's first slot with `scores` (one per candidate) on every logged decision.

    ``heard``: the impressions of each candidate's ad the replayed model learned from (``heard_by_candidate``),
    for decisions logged by SquareCB with optimism; None, a model that counted none, which Decide serves (and
    this replays) without optimism. ``replay_at``: every decision replayed at this logged setting instead of its
    own (``prevailing_setting``).
    """
    m = len(slot)
    target = np.empty(m, dtype=np.float64)
    direct = np.empty(m, dtype=np.float64)
    predicted = np.empty(m, dtype=np.float64)
    expected_values = np.asarray(scores, dtype=np.float64) * slot.candidate_values
    rewards_hat = np.asarray(reward_predictions, dtype=np.float64)
    offsets = slot.offsets
    settings = zip(
        slot.policy_codes.tolist(),
        slot.policy_parameters.tolist(),
        (slot.policy_optimism if heard is not None else np.zeros(m)).tolist(),
        strict=True,
    )
    keys = list(settings) if replay_at is None else [replay_at] * m
    policies = {key: replayed_policy(exploration_policy(POLICY_NAMES[key[0]], key[1], key[2])) for key in set(keys)}
    uncertainty = None if heard is None else relative_uncertainty(np.asarray(scores, dtype=np.float64), heard)
    for i, key in enumerate(keys):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        policy = policies[key]
        probabilities = policy.slot_probabilities(
            expected_values[lo:hi], np.ones(hi - lo, dtype=bool), None if uncertainty is None else uncertainty[lo:hi]
        )
        position = int(slot.logged_position[i])
        target[i] = probabilities[position]
        direct[i] = float(probabilities @ rewards_hat[lo:hi])
        predicted[i] = rewards_hat[lo + position]
    return SlotOneTerms(
        target_probability=target,
        logging_propensity=slot.logged_propensity,
        rewards=slot.rewards.astype(np.float64),
        direct=direct,
        predicted_logged=predicted,
    )


def heard_by_candidate(slot: SlotOne, ad_rows: np.ndarray, model: Scorer, ad_id_column: int) -> np.ndarray | None:
    """The impressions of each candidate's ad ``model`` learned from (its manifest's ``heard_ads``); None when it
    counted none."""
    heard = model.heard_ads if isinstance(model, Trained) else None
    return None if heard is None else heard.of(ad_rows[slot.candidate_ads, ad_id_column].astype(np.int64))


def score_candidates(slot: SlotOne, ad_rows: np.ndarray, model: Scorer) -> np.ndarray:
    """The model's CTR for every candidate, built and scored a bounded number of rows at a time."""
    decision_of = np.repeat(np.arange(len(slot), dtype=np.int64), slot.counts)
    out = np.empty(decision_of.size, dtype=np.float64)
    for lo in range(0, decision_of.size, SCORING_CHUNK):
        hi = min(lo + SCORING_CHUNK, decision_of.size)
        rows = np.hstack(
            [slot.listener_rows[decision_of[lo:hi]], ad_rows[slot.candidate_ads[lo:hi]], slot.candidate_rows[lo:hi]]
        )
        out[lo:hi] = model.predict(rows.astype(np.int64))
    return out


LoggedSetting = tuple[int, float, float]
"""A logged exploration setting: its policy's code (``POLICY_NAMES``), its parameter and SquareCB's optimism."""


def prevailing_setting(slot: SlotOne) -> LoggedSetting:
    """The setting that logged most of ``slot``'s decisions (of equals, the greatest): what cross-fitted estimates
    replay every decision at, given the latest fold.

    Why not the latest decision's: a challenger serves beside the champion at its own setting, so the last decision
    is either's by chance, and decisions of one instant come in no meaningful order."""
    settings = zip(
        slot.policy_codes.tolist(), slot.policy_parameters.tolist(), slot.policy_optimism.tolist(), strict=True
    )
    counts = Counter(settings)
    return max(counts, key=lambda setting: (counts[setting], setting))


@dataclass(frozen=True)
class Fold:
    """A cross-fitted fold: its decisions' slot 1, the fit that never learned from them, and the impressions of
    each ad that fit did learn from (for SquareCB's optimism)."""

    slot: SlotOne
    model: Scorer
    heard: HeardAds


def _replayed(
    slot: SlotOne, ad_rows: np.ndarray, new: Scorer, folds: Sequence[Fold], ad_id_column: int
) -> tuple[SlotOne, np.ndarray, np.ndarray | None]:
    """The decisions the new policy is estimated on, each candidate's score and its ad's heard impressions: the
    holdout's by ``new``, or every fold's by its own fit."""
    if not folds:
        scores = score_candidates(slot, ad_rows, new)
        return slot, scores, heard_by_candidate(slot, ad_rows, new, ad_id_column)
    every = SlotOne.concatenate(
        [fold.slot for fold in folds], slot.listener_rows.shape[1], slot.candidate_rows.shape[1]
    )
    scores = np.concatenate([np.empty(0), *(score_candidates(fold.slot, ad_rows, fold.model) for fold in folds)])
    heard = [fold.heard.of(ad_rows[fold.slot.candidate_ads, ad_id_column].astype(np.int64)) for fold in folds]
    return every, scores, np.concatenate([np.empty(0), *heard])


def predict_examples(examples: Examples, model: Scorer) -> np.ndarray:
    out = np.empty(len(examples), dtype=np.float64)
    for lo in range(0, len(examples), SCORING_CHUNK):
        out[lo : lo + SCORING_CHUNK] = model.predict(examples.indices[lo : lo + SCORING_CHUNK].astype(np.int64))
    return out


@dataclass(frozen=True)
class PolicyEstimate:
    version: str
    ips: float
    snips: float
    dr: float
    standard_errors: dict[Estimator, float] | None = None

    @classmethod
    def of(cls, version: str, terms: SlotOneTerms) -> "PolicyEstimate":
        values = {name: round(ESTIMATOR_FUNCTIONS[name](terms), 6) for name in ESTIMATORS}
        errors = {name: round(error, 6) for name, error in standard_errors(terms).items()}
        return cls(version, ips=values["ips"], snips=values["snips"], dr=values["dr"], standard_errors=errors)

    def error(self, estimator: Estimator) -> float | None:
        return None if self.standard_errors is None else self.standard_errors[estimator]

    def value(self, estimator: Estimator) -> float:
        return float(getattr(self, estimator))


@dataclass(frozen=True)
class ModeEstimate:
    """The new policy's estimate on the decisions of one serving mode, next to what the logger observed there."""

    decisions: int
    logging_observed: float
    new_policy: PolicyEstimate


@dataclass(frozen=True)
class Evaluation:
    new: HoldoutMetrics
    new_policy: PolicyEstimate
    decisions: int
    logging_observed: float | None
    """The logged policy's own slot-1 click rate on the holdout decisions (on-policy, no estimator)."""
    champion: HoldoutMetrics | None = None
    champion_policy: PolicyEstimate | None = None
    champion_decisions: int | None = None
    """The holdout decisions the champion was judged on, those after everything it learned from
    (``CtrModel.unseen_from``); None without a champion. With none, it is not judged."""
    new_on_champion_decisions: PolicyEstimate | None = None
    """The new policy on the champion's decisions when they are not all of them: what the verdict compares."""
    by_mode: dict[str, ModeEstimate] = field(default_factory=dict)
    """Per serving mode present in the holdout: a contextual listener sees the model without its own fields,
    so a model can win overall and lose in one mode."""
    cross_fitted: int = 0
    """The folds the off-policy estimates were cross-fitted over (``Fold``); 0: the holdout's, by the new model."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "holdout": {"new": asdict(self.new), "champion": None if self.champion is None else asdict(self.champion)},
            "off_policy": {
                "decisions": self.decisions,
                "logging_observed": self.logging_observed,
                "new": asdict(self.new_policy),
                "champion": None if self.champion_policy is None else asdict(self.champion_policy),
                "champion_decisions": self.champion_decisions,
                "new_on_champion_decisions": (
                    None if self.new_on_champion_decisions is None else asdict(self.new_on_champion_decisions)
                ),
                "by_mode": {mode: asdict(estimate) for mode, estimate in self.by_mode.items()},
                "cross_fitted_folds": self.cross_fitted,
            },
        }


def evaluate(
    holdout: Examples,
    slot: SlotOne,
    ad_rows: np.ndarray,
    new: Scorer,
    champion: Scorer | None,
    *,
    ad_id_column: int,
    folds: Sequence[Fold] = (),
) -> Evaluation:
    """Metrics and OPE estimates of `new` (and `champion`), with `new` as the reward model for DR.

    ``ad_id_column``: where ``ad_rows`` hold the ad_id index (``heard_ads.ad_id_column``), to replay optimism.
    ``folds``: estimate the new policy (and judge the champion) on every fold's decisions, each scored by its own
    fit, which is also its DR reward model, all at ``prevailing_setting`` of the latest fold; the metrics stay the
    holdout's. No fold: on the holdout, by ``new``.
    """
    replay_at = None if not folds else prevailing_setting(folds[-1].slot)
    slot, new_scores, heard = _replayed(slot, ad_rows, new, folds, ad_id_column)
    new_terms = slot_one_terms(slot, new_scores, new_scores, heard, replay_at=replay_at)
    observed = round(float(slot.rewards.mean()), 6) if len(slot) else None
    by_mode = {
        mode: ModeEstimate(
            decisions=int(mask.sum()),
            logging_observed=round(float(slot.rewards[mask].mean()), 6),
            new_policy=PolicyEstimate.of(new.version, new_terms.select(mask)),
        )
        for mode, mask in (("personalised", ~slot.contextual), ("contextual", slot.contextual))
        if mask.any()
    }
    evaluation = Evaluation(
        new=HoldoutMetrics.of(holdout.labels, predict_examples(holdout, new)),
        new_policy=PolicyEstimate.of(new.version, new_terms),
        decisions=len(slot),
        logging_observed=observed,
        by_mode=by_mode,
        cross_fitted=len(folds),
    )
    if champion is None:
        return evaluation
    # A champion refitted on every row, or trained on a window that overlaps this one, learned from some of these
    # decisions: judged on them it looks better than it is, and a new model must beat its fit to its own rows.
    unseen = unseen_by(champion, slot.decided_at)
    judged = int(unseen.sum())
    if not judged:
        return replace(evaluation, champion_decisions=0)
    champion_slot = slot.select(unseen)
    champion_holdout = holdout.select(unseen_by(champion, holdout.decided_at))
    champion_terms = slot_one_terms(
        champion_slot,
        score_candidates(champion_slot, ad_rows, champion),
        new_scores[np.repeat(unseen, slot.counts)],
        heard_by_candidate(champion_slot, ad_rows, champion, ad_id_column),
        replay_at=replay_at,
    )
    return replace(
        evaluation,
        champion=HoldoutMetrics.of(champion_holdout.labels, predict_examples(champion_holdout, champion)),
        champion_policy=PolicyEstimate.of(champion.version, champion_terms),
        champion_decisions=judged,
        new_on_champion_decisions=(
            None if judged == len(slot) else PolicyEstimate.of(new.version, new_terms.select(unseen))
        ),
    )


def unseen_by(model: Scorer, decided_at: np.ndarray) -> np.ndarray:
    """Which decisions (by their times) ``model`` learned nothing from: all, for a model that learned from none."""
    start = model.unseen_from if isinstance(model, Windowed) else None
    return np.ones(decided_at.shape, dtype=bool) if start is None else np.asarray(decided_at >= start)


def unseen_by_all(models: Sequence[Scorer], decided_at: np.ndarray) -> np.ndarray:
    """Which decisions none of ``models`` learned anything from."""
    return np.asarray(np.logical_and.reduce([unseen_by(model, decided_at) for model in models]))


@dataclass(frozen=True)
class PromotionRule:
    """Promote when new >= baseline + |baseline| x margin on `estimator` (with a positive margin, and more than
    the baseline: a tie is no gain); the baseline is the champion's estimate, or the logging policy's observed
    rate when no champion could be evaluated."""

    estimator: Estimator = "snips"
    margin: float = 0.02

    def __post_init__(self) -> None:
        if not math.isfinite(self.margin):  # NaN fails both of judge's comparisons, which then promotes
            raise ValueError(f"a promotion margin must be a finite number, not {self.margin}")


@dataclass(frozen=True)
class PromotionVerdict:
    promote: bool
    estimator: Estimator
    margin: float
    new_value: float | None
    baseline: str
    baseline_value: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(evaluation: Evaluation, rule: PromotionRule) -> PromotionVerdict:
    """The rule on the new policy's estimate against the champion's, on the decisions the champion is judged on
    (``Evaluation.champion_decisions``); against the logging policy's observed rate when no champion is judged."""
    new_value = evaluation.new_policy.value(rule.estimator)
    if evaluation.champion_policy is not None:
        baseline, baseline_value = (
            f"champion {evaluation.champion_policy.version}",
            evaluation.champion_policy.value(rule.estimator),
        )
        if evaluation.new_on_champion_decisions is not None:
            new_value = evaluation.new_on_champion_decisions.value(rule.estimator)
            baseline += f" on its {evaluation.champion_decisions:,} unseen decisions"
    else:
        observed = evaluation.logging_observed
        baseline, baseline_value = "logging policy (observed)", float("nan") if observed is None else observed

    def verdict(promote: bool, reason: str) -> PromotionVerdict:
        return PromotionVerdict(
            promote=promote,
            estimator=rule.estimator,
            margin=rule.margin,
            new_value=None if np.isnan(new_value) else new_value,
            baseline=baseline,
            baseline_value=None if np.isnan(baseline_value) else baseline_value,
            reason=reason,
        )

    if evaluation.decisions == 0:  # a champion that learned from all of them is not judged: the logging policy is
        return verdict(False, "no holdout decisions to estimate the policies on")
    if np.isnan(new_value) or np.isnan(baseline_value):
        # Decisions were judged, yet no estimate: their weights sum to 0 (no logged choice the policy would make)
        # or one is not finite (a logged propensity so small its inverse overflows)
        why = "the logged choices' weights sum to 0 or one is not finite"
        return verdict(False, f"no {rule.estimator} estimate ({new_value} against {baseline_value}): {why}")
    if not (np.isfinite(new_value) and np.isfinite(baseline_value)):
        return verdict(False, f"an estimate is not finite ({rule.estimator} {new_value} against {baseline_value})")
    # The margin on the baseline's size, so a negative (DR) baseline is not lowered by it; and a positive margin
    # asks for a gain, which a tie at 0 (no click on the decisions judged) is not. A margin of 0 or below is an
    # operator accepting ties or less.
    threshold = baseline_value + abs(baseline_value) * rule.margin
    bar = f"{baseline} {baseline_value:.5f} with a margin of {rule.margin:g}: {threshold:.5f}"
    if new_value < threshold:
        return verdict(False, f"{rule.estimator} {new_value:.5f} < {bar}")
    if rule.margin > 0 and new_value <= baseline_value:
        return verdict(False, f"{rule.estimator} {new_value:.5f} ties {bar}, no gain")
    return verdict(True, f"{rule.estimator} {new_value:.5f} >= {bar}")


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _estimate_cell(policy: PolicyEstimate | None, estimator: Estimator) -> str:
    if policy is None:
        return "-"
    error = policy.error(estimator)
    value = _cell(policy.value(estimator), 5)
    return value if error is None or np.isnan(error) else f"{value} ±{error:.5f}"


def _table(pairs: list[tuple[str, HoldoutMetrics | None, PolicyEstimate | None]], observed: float | None) -> list[str]:
    header = ("model", "AUC", "log loss", "ECE", "IPS", "SNIPS", "DR")
    rows: list[tuple[str, ...]] = []
    for name, metrics, policy in pairs:
        rows.append(
            (
                name,
                _cell(metrics.auc if metrics else None),
                _cell(metrics.log_loss if metrics else None),
                _cell(metrics.ece if metrics else None),
                *(_estimate_cell(policy, e) for e in ESTIMATORS),
            )
        )
    rows.append(("logging policy (observed)", "-", "-", "-", _cell(observed, 5), "-", "-"))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def render(evaluation: Evaluation, verdict: PromotionVerdict | None = None) -> str:
    """The evaluation as a fixed-width table (what `adserve train` prints)."""
    pairs: list[tuple[str, HoldoutMetrics | None, PolicyEstimate | None]] = [
        (f"new {evaluation.new_policy.version}", evaluation.new, evaluation.new_policy)
    ]
    if evaluation.champion_policy is not None:
        pairs.append(
            (f"champion {evaluation.champion_policy.version}", evaluation.champion, evaluation.champion_policy)
        )
    lines = _table(pairs, evaluation.logging_observed)
    holdout = evaluation.new
    estimated_on = (
        f"{evaluation.decisions:,} decisions, every fold of {evaluation.cross_fitted} by a fit without it"
        if evaluation.cross_fitted
        else f"{evaluation.decisions:,} decisions"
    )
    lines.append(f"holdout: {holdout.rows:,} rows ({holdout.positives:,} positives); estimates on {estimated_on}")
    judged = evaluation.champion_decisions
    if judged == 0:
        lines.append("champion not judged: it learned from every holdout decision")
    elif judged is not None and judged < evaluation.decisions:
        lines.append(f"champion judged on {judged:,} of them, those after everything it learned from")
    for mode, estimate in evaluation.by_mode.items():
        lines.append(
            f"{mode}: {estimate.decisions:,} decisions, new SNIPS {_estimate_cell(estimate.new_policy, 'snips')}, "
            f"logging policy observed {_cell(estimate.logging_observed, 5)}"
        )
    if verdict is not None:
        lines.append(f"promotion: {'yes' if verdict.promote else 'no'} ({verdict.reason})")
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """Published models side by side on the same logged decisions (``adserve models evaluate``)."""

    rows: list[tuple[str, HoldoutMetrics, PolicyEstimate]]
    decisions: int
    logging_observed: float | None
    reward_model: str
    learned_from: int = 0
    """The range's decisions left out because one of the models learned from them (``unseen_by``)."""

    def render(self) -> str:
        lines = _table([(name, metrics, policy) for name, metrics, policy in self.rows], self.logging_observed)
        examples = self.rows[0][1] if self.rows else HoldoutMetrics(0, 0, None, None, None)
        lines.append(
            f"evaluated on {examples.rows:,} rows ({examples.positives:,} positives), {self.decisions:,} decisions; "
            f"DR's reward model: {self.reward_model}"
        )
        if self.learned_from:
            lines.append(f"left out: {self.learned_from:,} decisions of the range that a model learned from")
        return "\n".join(lines)


def compare(
    examples: Examples,
    slot: SlotOne,
    ad_rows: np.ndarray,
    models: Sequence[tuple[str, Scorer]],
    *,
    ad_id_column: int,
) -> Comparison:
    """Each (label, model) scored on the same rows and decisions, those none of them learned from; the first model
    is every policy's DR reward model, as the new model is in ``evaluate``, so the DR column compares policies,
    not reward models."""
    if not models:
        raise ValueError("nothing to compare")
    scorers = [model for _, model in models]
    unseen = unseen_by_all(scorers, slot.decided_at)
    learned_from = len(slot) - int(unseen.sum())
    if learned_from:
        slot, examples = slot.select(unseen), examples.select(unseen_by_all(scorers, examples.decided_at))
    scores = [score_candidates(slot, ad_rows, model) for _, model in models]
    rows = [
        (
            label,
            HoldoutMetrics.of(examples.labels, predict_examples(examples, model)),
            PolicyEstimate.of(
                model.version,
                slot_one_terms(slot, model_scores, scores[0], heard_by_candidate(slot, ad_rows, model, ad_id_column)),
            ),
        )
        for (label, model), model_scores in zip(models, scores, strict=True)
    ]
    observed = round(float(slot.rewards.mean()), 6) if len(slot) else None
    return Comparison(rows, len(slot), observed, models[0][1].version, learned_from)


def manifest_metrics(evaluation: Evaluation, verdict: PromotionVerdict) -> Mapping[str, Any]:
    """The manifest's flat headline keys (as the bootstrap manifest has them) plus the full evaluation."""
    return {
        "holdout_auc": evaluation.new.auc,
        "holdout_log_loss": evaluation.new.log_loss,
        "holdout_ece": evaluation.new.ece,
        "evaluation": evaluation.to_dict() | {"promotion": verdict.to_dict()},
    }
