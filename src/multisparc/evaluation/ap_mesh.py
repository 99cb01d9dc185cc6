"""AP^mesh (Mesh R-CNN, Gkioxari et al. 2019) over per-image assessments.

F-score: points are sampled on the predicted and the ground-truth CAD model, each in its pose; both
sets are scaled about the camera centre so that the longest side of the ground truth's axis-aligned
bounding box (its posed mesh vertices) is 10. Precision is the fraction of predicted points closer than
rho to some ground-truth point, recall the fraction of ground-truth points closer than rho to some
predicted point (strictly closer, as Mesh R-CNN's `compare_meshes`), F their harmonic mean (0 when both
are 0). With rho = 0.5 and a 1 m object, points must lie within 5 cm.

Matching (Mesh R-CNN's `evaluate_for_pix3d` for several objects per image): the predictions of one frame
are taken in descending ranking score. A prediction whose 2D box overlaps no taking-part ground-truth
object by more than IoU 0.3 (of any class) is ignored, as Mesh R-CNN ignores predictions off its object.
The others are paired with their associated object (same class, largest box IoU: the per-image
protocol, `multisparc.evaluation.per_image`); at threshold tau a prediction is a true positive when its
F-score with that object exceeds tau and no earlier prediction of the frame took the object at tau (it
then takes it), otherwise a false positive; a prediction without an associated object is a false
positive. Ground-truth positives are the taking-part objects of each class.

AP per class is the area under the precision-recall curve of all frames' predictions of that class in
descending score, with the VOC all-point interpolation (precision made monotone from the right, summed
over every recall step; Mesh R-CNN's `VOCap.compute_ap`). Classes without positives are left out. AP50
is the AP at tau = 0.5, APmean the mean over tau = 0.50, 0.55, ..., 0.95; both per class and averaged
over classes, for each rho.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from multisparc.cad import CadIndex
from multisparc.evaluation.matching import WorldObject
from multisparc.evaluation.per_image import FrameAssessment
from multisparc.evaluation.presets import RankingScore

RHOS: tuple[float, ...] = (0.3, 0.5, 0.7)
TAUS: tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
NORMALISED_SIZE = 10.0
FILTER_IOU = 0.3
N_POINTS = 10000


def f_scores(pred_points: np.ndarray, gt_points: np.ndarray, rhos: Sequence[float]) -> np.ndarray:
    """(len(rhos),) F-scores in [0, 1] of points pred_points (N, 3) against gt_points (M, 3) (same units)."""
    pred_to_gt, _ = cKDTree(gt_points).query(pred_points)
    gt_to_pred, _ = cKDTree(pred_points).query(gt_points)
    scores = []
    for rho in rhos:
        precision = float(np.mean(pred_to_gt < rho))
        recall = float(np.mean(gt_to_pred < rho))
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return np.array(scores)


def posed_points(obj: WorldObject, cads: CadIndex, n_points: int, seed: int = 0) -> np.ndarray:
    """(n, 3) surface points of the object's CAD in its pose, metres."""
    points, _ = cads.points(obj.cad, n_points, seed)
    return obj.t + (np.asarray(points, dtype=np.float64) * obj.s) @ obj.R.T


def model_f_scores(
    prediction: WorldObject,
    ground_truth: WorldObject,
    cads: CadIndex,
    rhos: Sequence[float] = RHOS,
    n_points: int = N_POINTS,
    seed: int = 0,
) -> np.ndarray:
    """(len(rhos),) F-scores of two posed CAD models after scaling both so that the ground truth's longest
    bounding-box side is NORMALISED_SIZE (module docstring)."""
    vertices = ground_truth.t + (np.asarray(cads.mesh(ground_truth.cad).vertices) * ground_truth.s) @ ground_truth.R.T
    factor = NORMALISED_SIZE / float(np.ptp(vertices, axis=0).max())
    pred = posed_points(prediction, cads, n_points, seed) * factor
    gt = posed_points(ground_truth, cads, n_points, seed) * factor
    return f_scores(pred, gt, rhos)


def average_precision(scores: np.ndarray, true_positive: np.ndarray, n_positives: int) -> float:
    """VOC all-point interpolated AP of detections with scores (N,) and true_positive (N,) bool against
    n_positives ground-truth objects (> 0). Ties keep the given order."""
    if n_positives <= 0:
        raise ValueError(f"average precision needs at least one positive, got {n_positives}")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(true_positive, dtype=bool)[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = np.concatenate([[0.0], tp / n_positives, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


@dataclass
class MeshApResults:
    """AP^mesh: ap[rho][class] (len(taus),) AP per F threshold; n_positives per class; rhos, taus."""

    rhos: tuple[float, ...]
    taus: tuple[float, ...]
    ap: dict[float, dict[str, np.ndarray]]
    n_positives: dict[str, int]

    def _tau_index(self, tau: float) -> int:
        matches = np.flatnonzero(np.isclose(self.taus, tau))
        if not len(matches):
            raise ValueError(f"tau {tau} was not evaluated; taus are {self.taus}")
        return int(matches[0])

    def ap_at(self, rho: float, tau: float = 0.5) -> dict[str, float]:
        """AP per class at F threshold tau (AP50 for tau = 0.5)."""
        index = self._tau_index(tau)
        return {name: float(values[index]) for name, values in self.ap[rho].items()}

    def ap_mean(self, rho: float) -> dict[str, float]:
        """AP per class averaged over all taus (APmean)."""
        return {name: float(np.mean(values)) for name, values in self.ap[rho].items()}

    def mean_ap50(self, rho: float) -> float:
        """AP50 averaged over classes."""
        return float(np.mean(list(self.ap_at(rho, 0.5).values())))

    def mean_ap_mean(self, rho: float) -> float:
        """APmean averaged over classes."""
        return float(np.mean(list(self.ap_mean(rho).values())))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: per rho, AP50 and APmean per class and their class means (fractions)."""
        return {
            "taus": list(self.taus),
            "n_positives": dict(self.n_positives),
            "rho": {
                str(rho): {
                    "ap50": self.mean_ap50(rho),
                    "ap_mean": self.mean_ap_mean(rho),
                    "ap50_per_class": self.ap_at(rho, 0.5),
                    "ap_mean_per_class": self.ap_mean(rho),
                }
                for rho in self.rhos
            },
        }


def evaluate_ap_mesh(
    assessments: Sequence[FrameAssessment],
    cads: CadIndex,
    rhos: Sequence[float] = RHOS,
    taus: Sequence[float] = TAUS,
    ranking_score: RankingScore = "score",
    n_points: int = N_POINTS,
    filter_iou: float = FILTER_IOU,
    seed: int = 0,
) -> MeshApResults:
    """AP^mesh of per-image assessments (`multisparc.evaluation.per_image.assess_frame`), module docstring."""
    rhos, taus = tuple(rhos), tuple(taus)
    n_positives: dict[str, int] = defaultdict(int)
    scores: dict[str, list[float]] = defaultdict(list)
    # true_positive[name]: one (len(rhos), len(taus)) bool array per prediction of that class.
    true_positive: dict[str, list[np.ndarray]] = defaultdict(list)
    for assessment in assessments:
        for g in np.flatnonzero(assessment.visible):
            n_positives[assessment.ground_truth[g].category] += 1
        ranked = [index for index in range(len(assessment.predictions)) if assessment.evaluated[index]]
        ranked.sort(key=lambda index: -assessment.predictions[index].ranking_value(ranking_score))
        taken = np.zeros((len(assessment.ground_truth), len(rhos), len(taus)), dtype=bool)
        for index in ranked:
            if assessment.best_iou[index] <= filter_iou:
                continue
            pred = assessment.predictions[index]
            hit = np.zeros((len(rhos), len(taus)), dtype=bool)
            g = assessment.assigned[index]
            if g is not None:
                f = model_f_scores(pred, assessment.ground_truth[g], cads, rhos, n_points, seed)
                hit = (f[:, None] > np.asarray(taus)[None]) & ~taken[g]
                taken[g] |= hit
            scores[pred.category].append(pred.ranking_value(ranking_score))
            true_positive[pred.category].append(hit)
    ap: dict[float, dict[str, np.ndarray]] = {rho: {} for rho in rhos}
    for name, positives in n_positives.items():
        class_scores = np.array(scores.get(name, []))
        hits = np.array(true_positive.get(name, [])).reshape(-1, len(rhos), len(taus))
        for r, rho in enumerate(rhos):
            ap[rho][name] = np.array(
                [average_precision(class_scores, hits[:, r, t], positives) for t in range(len(taus))]
            )
    return MeshApResults(rhos=rhos, taus=taus, ap=ap, n_positives=dict(n_positives))
