"""A second-order factorization machine over hashed field indices, trained with sparse Adagrad in numpy.

logit(x) = bias + sum_f w[x_f] + 1/2 * sum_k ((sum_f V[x_f, k])^2 - sum_f V[x_f, k]^2)

With ``unpaired_fields`` = n > 0 the pairs among the first n fields (the listener's) are left out:
logit(x) = bias + sum_f w[x_f] + sum_{f<g, g>=n} <V[x_f], V[x_g]>. A pair of two listener fields is the same for
every ad a listener could hear, so it never changes a ranking; yet it shares the listener's factors with the
listener x ad pairs that do, and with it the factors must serve two fits at once (see ``TrainerConfig.pairs``).

The hash space is large (2**18 rows of w and V) but a batch touches only a few hundred rows, so gradients
and optimiser state are updated for those rows alone.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from adserve.training.metrics import log_loss


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser settings; defaults fit the simulated world's ~2-6% CTR and tens of thousands to a million rows.

    ``patience`` (epochs without a better validation log loss before stopping) is 6, not fewer: at a few
    thousand clicks the validation loss wobbles from epoch to epoch while the pair factors, which start near
    zero, are still growing, and an early stop at the first wobble keeps a model that has learned the main
    effects but little of who likes which ad (the last retrain of three demo worlds: 84-90% of the
    oracle's greedy click rate at patience 2, 90-93% at 6, best epochs up to ~40). ``max_epochs`` bounds
    the time: 60 epochs of a million rows is about 1.5 minutes of training at the bench's throughput.
    ``batch_size`` sets the steps per epoch, not the time per row (the step's cost is per row): 1024 suits a
    deployment's week of logs; the demo's first models, of a few thousand rows, take one to seven steps an epoch
    at 1024 and learn more per logged decision at 64 (docs/learning.md, "Smaller training batches").
    """

    learning_rate: float = 0.05
    l2_linear: float = 1e-5
    l2_factors: float = 1e-4
    batch_size: int = 1024
    max_epochs: int = 60
    patience: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


@dataclass
class FitReport:
    """What early stopping saw: validation log loss after each epoch and the epoch that was kept."""

    best_epoch: int = 0
    validation_log_loss: list[float] = field(default_factory=list)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class FactorizationMachine:
    """Parameters (``bias``, ``weights`` [H], ``factors`` [H, k]) plus the training loop that fits them."""

    def __init__(
        self, hash_size: int, num_factors: int = 8, seed: int = 0, init_scale: float = 0.01, unpaired_fields: int = 0
    ) -> None:
        if unpaired_fields < 0:
            raise ValueError("unpaired_fields must not be negative")
        rng = np.random.default_rng(seed)
        self.unpaired_fields = unpaired_fields
        self.bias = 0.0
        self.weights = np.zeros(hash_size)
        self.factors = rng.normal(0.0, init_scale, (hash_size, num_factors))

    @property
    def hash_size(self) -> int:
        return int(self.weights.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.factors.shape[1])

    def logits(self, indices: np.ndarray) -> np.ndarray:
        """Raw scores for an (n, num_fields) index matrix."""
        v = self.factors[indices]
        return np.asarray(self.bias + self.weights[indices].sum(axis=1) + self._pairwise(v, v.sum(axis=1)))

    def _pairwise(self, v: np.ndarray, summed: np.ndarray) -> np.ndarray:
        """The pair terms of rows whose factors are ``v`` [n, F, k] (``summed`` = v.sum(axis=1))."""
        pairwise = 0.5 * (summed * summed - (v * v).sum(axis=1)).sum(axis=1)
        if self.unpaired_fields:
            inner = v[:, : self.unpaired_fields]
            inner_sum = inner.sum(axis=1)
            pairwise -= 0.5 * (inner_sum * inner_sum - (inner * inner).sum(axis=1)).sum(axis=1)
        return np.asarray(pairwise)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        """Click probabilities for an (n, num_fields) index matrix."""
        return _sigmoid(self.logits(indices))

    def fit(
        self,
        indices: np.ndarray,
        clicks: np.ndarray,
        validation_indices: np.ndarray,
        validation_clicks: np.ndarray,
        config: TrainingConfig | None = None,
        *,
        sample_weights: np.ndarray | None = None,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> FitReport:
        """Mini-batch Adagrad on log loss; keeps the epoch with the best validation log loss.

        ``sample_weights`` (e.g. clipped inverse propensities, mean about 1) scale each row's gradient;
        ``on_epoch(epoch, validation_log_loss)`` is called after every epoch (a progress bar).
        Rows never seen in training end at zero, so an unseen value at serving time is neutral instead
        of carrying its random initialisation (and the exported model can drop those rows).
        """
        config = config or TrainingConfig()
        rng = np.random.default_rng(config.seed)
        y = np.asarray(clicks, dtype=np.float64)
        weights = None if sample_weights is None else np.asarray(sample_weights, dtype=np.float64)
        state = _AdagradState(self)
        report = FitReport()
        best = self._snapshot()
        best_loss = np.inf
        for epoch in range(1, config.max_epochs + 1):
            order = rng.permutation(len(y))
            for start in range(0, len(y), config.batch_size):
                batch = order[start : start + config.batch_size]
                self._step(indices[batch], y[batch], state, config, None if weights is None else weights[batch])
            loss = log_loss(validation_clicks, self.predict(validation_indices))
            report.validation_log_loss.append(loss)
            if on_epoch is not None:
                on_epoch(epoch, loss)
            if loss < best_loss:
                best_loss, best, report.best_epoch = loss, self._snapshot(), epoch
            elif epoch - report.best_epoch >= config.patience:
                break
        self.bias, self.weights, self.factors = best
        untouched = np.ones(self.hash_size, dtype=bool)
        untouched[np.unique(indices)] = False
        self.factors[untouched] = 0.0
        return report

    def _snapshot(self) -> tuple[float, np.ndarray, np.ndarray]:
        return self.bias, self.weights.copy(), self.factors.copy()

    def _step(
        self,
        x: np.ndarray,
        y: np.ndarray,
        state: "_AdagradState",
        config: TrainingConfig,
        row_weights: np.ndarray | None = None,
    ) -> None:
        n, num_fields = x.shape
        v = self.factors[x]
        summed = v.sum(axis=1)
        logits = self.bias + self.weights[x].sum(axis=1) + self._pairwise(v, summed)
        residual = (_sigmoid(logits) - y) / n  # d(mean log loss)/d(logit)
        if row_weights is not None:
            residual *= row_weights

        rows, inverse = np.unique(x.ravel(), return_inverse=True)
        inverse = inverse.ravel()
        grad_w = np.bincount(inverse, weights=np.repeat(residual, num_fields), minlength=len(rows))
        partners = summed[:, None, :] - v  # d(pairs)/d(V[x_f]): the factors of every other field
        if self.unpaired_fields:  # an unpaired field's partners are the fields after the unpaired ones only
            others = summed - v[:, : self.unpaired_fields].sum(axis=1)
            partners[:, : self.unpaired_fields] = others[:, None, :]
        per_entry = (residual[:, None, None] * partners).reshape(-1, self.num_factors)
        grad_v = np.stack(
            [np.bincount(inverse, weights=per_entry[:, k], minlength=len(rows)) for k in range(self.num_factors)],
            axis=1,
        )
        grad_w += config.l2_linear * self.weights[rows]
        grad_v += config.l2_factors * self.factors[rows]
        grad_b = float(residual.sum())

        lr, eps = config.learning_rate, 1e-8
        state.bias += grad_b * grad_b
        self.bias -= lr * grad_b / (np.sqrt(state.bias) + eps)
        state.weights[rows] += grad_w * grad_w
        self.weights[rows] -= lr * grad_w / (np.sqrt(state.weights[rows]) + eps)
        state.factors[rows] += grad_v * grad_v
        self.factors[rows] -= lr * grad_v / (np.sqrt(state.factors[rows]) + eps)


class _AdagradState:
    """Sum of squared gradients per parameter, the per-coordinate step-size memory of Adagrad."""

    def __init__(self, model: FactorizationMachine) -> None:
        self.bias = 0.0
        self.weights = np.zeros_like(model.weights)
        self.factors = np.zeros_like(model.factors)
