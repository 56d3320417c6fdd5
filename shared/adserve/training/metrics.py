"""Ranking and calibration metrics for click models, in numpy so training needs no sklearn."""

import numpy as np


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative; tied scores count one half."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative label")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    average_rank = first_rank + (counts - 1) / 2.0  # 1-based ranks, averaged over each tie group
    positive_rank_sum = float(average_rank[inverse][y].sum())
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of binary labels; probabilities are clipped so 0 and 1 stay finite."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), eps, 1.0 - eps)
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} probabilities")
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
