"""How well a score predicts correctness: accuracy of the top-scored predictions (the paper's Fig. 4b) and
reliability diagrams with the expected calibration error, plus a plot of both.

Inputs are one score per prediction and whether the prediction was correct (from
`AlignmentResults.outcomes` or `PerImageResults.scored_predictions`). Scores are probabilities in [0, 1]
(the learned classification score, or a detector's confidence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _check(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    if scores.shape != correct.shape:
        raise ValueError(f"{len(scores)} scores for {len(correct)} correctness flags")
    if len(scores) == 0:
        raise ValueError("calibration needs at least one prediction")
    if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise ValueError(f"scores must lie in [0, 1], got values in [{scores.min()}, {scores.max()}]")
    return scores, correct


def accuracy_vs_score(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of the top-k predictions by score, for every k (Fig. 4b).

    Args: scores (N,) in [0, 1]; correct (N,) bool. Returns fraction (N,) = k / N and accuracy (N,) =
    mean correctness of the k highest-scored predictions (ties keep the given order). A calibrated,
    discriminative score gives a curve that falls from near 1 to the overall accuracy.
    """
    scores, correct = _check(scores, correct)
    order = np.argsort(-scores, kind="stable")
    k = np.arange(1, len(scores) + 1)
    return k / len(scores), np.cumsum(correct[order]) / k


@dataclass
class ReliabilityDiagram:
    """Equal-width score bins over [0, 1]: edges (B + 1,); per bin the mean score `confidence` (B,),
    the fraction correct `accuracy` (B,) (NaN for empty bins) and `count` (B,); and
    ece = sum over bins of count / N * abs(accuracy - confidence)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    ece: float


def reliability_diagram(scores: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> ReliabilityDiagram:
    """Reliability diagram of scores (N,) in [0, 1] against correct (N,) bool; a score of 1 falls in the last bin."""
    scores, correct = _check(scores, correct)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(scores, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    filled = count > 0
    confidence = np.full(n_bins, np.nan)
    accuracy = np.full(n_bins, np.nan)
    confidence[filled] = np.bincount(bins, weights=scores, minlength=n_bins)[filled] / count[filled]
    accuracy[filled] = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)[filled] / count[filled]
    ece = float(np.sum(count[filled] / len(scores) * np.abs(accuracy[filled] - confidence[filled])))
    return ReliabilityDiagram(edges=edges, confidence=confidence, accuracy=accuracy, count=count, ece=ece)


def plot_calibration(
    path: Path | str,
    correct: np.ndarray,
    scores: Mapping[str, np.ndarray],
    n_bins: int = 10,
    title: str | None = None,
) -> Path:
    """Write a PNG: left, accuracy of the top-scored fraction of predictions (Fig. 4b); right, the
    reliability diagram with each score's ECE in the legend.

    Args:
        path: output PNG.
        correct: (N,) bool, whether each prediction is correct.
        scores: label -> (N,) scores of the same predictions, e.g. {"3D classification score": ...,
            "2D detection score": ...}; one curve each.
    Returns the path.
    """
    # An Agg canvas of its own: no pyplot state, no change of the caller's backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not scores:
        raise ValueError("plot_calibration needs at least one score")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(figure)
    sorted_axis, reliability_axis = figure.subplots(1, 2)
    for label, values in scores.items():
        fraction, accuracy = accuracy_vs_score(values, correct)
        sorted_axis.plot(100 * fraction, 100 * accuracy, label=label)
        diagram = reliability_diagram(values, correct, n_bins)
        centres = 0.5 * (diagram.edges[1:] + diagram.edges[:-1])
        filled = diagram.count > 0
        reliability_axis.plot(centres[filled], diagram.accuracy[filled], "o-", label=f"{label} (ECE {diagram.ece:.3f})")
    sorted_axis.set(
        xlabel="predictions kept, by descending score [%]", ylabel="accuracy [%]", xlim=(0, 100), ylim=(0, 100)
    )
    reliability_axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    reliability_axis.set(xlabel="score", ylabel="fraction correct", xlim=(0, 1), ylim=(0, 1))
    for axis in (sorted_axis, reliability_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
