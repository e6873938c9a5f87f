"""Evaluation metrics of the paper's tables, in NumPy (framework-neutral, channels first).

- classification (LRA, CIFAR): accuracy in percent (Tables 1, 3).
- DarcyFlow: relative L2 error, mean over samples of ||y_hat - y||_2 / ||y||_2 on the DECODED
  scale: both prediction and target go through the pointwise Gaussian normaliser's inverse
  y = z * (y_std + eps) + y_mean (data meta "normalisation"), as FNO / NAS-Bench-360 (Table 2).
- Cosmic: 1 - AUROC of the predicted probabilities sigmoid(logits) over every pixel whose
  ignore flag is 0 (Table 2). NAS-Bench-360 thresholded the logits at 0.5 first, which turns
  its number into 1 - (TPR + TNR) / 2; ours is the proper AUROC, as the metric's name says.
"""

from __future__ import annotations

import numpy as np

METRICS = {
    # name: (higher_is_better, unit shown in the tables)
    "accuracy": (True, "accuracy (%)"),
    "rel_l2": (False, "relative L2 error"),
    "one_minus_auroc": (False, "1 - AUROC"),
}


def metric_for(dataset: str, task: str) -> str:
    if dataset == "darcyflow":
        return "rel_l2"
    if dataset == "cosmic":
        return "one_minus_auroc"
    if task in ("global", "retrieval"):
        return "accuracy"
    raise ValueError(f"no metric for dataset {dataset!r} (task {task!r})")


def accuracy_pct(logits: np.ndarray, labels: np.ndarray) -> float:
    """logits (N, K), labels (N,) -> percent of argmax hits."""
    return float(100.0 * np.mean(np.argmax(logits, axis=-1) == labels))


def relative_l2(pred: np.ndarray, target: np.ndarray) -> float:
    """mean_n ||pred_n - target_n|| / ||target_n|| over the flattened samples."""
    n = pred.shape[0]
    diff = np.linalg.norm((pred - target).reshape(n, -1).astype(np.float64), axis=1)
    norm = np.linalg.norm(target.reshape(n, -1).astype(np.float64), axis=1)
    return float(np.mean(diff / np.maximum(norm, 1e-12)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores given their average rank).
    NaN when one class is absent."""
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg_rank = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty_like(scores)
    ranks[order] = np.repeat(avg_rank, counts)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))
