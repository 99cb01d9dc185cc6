"""Training losses of Multi-SPARC-Net (paper Sec. 3.3 and Supp. B).

- Alignment loss: L1 distance between N_loss CAD points placed by the predicted pose and by the
  ground-truth pose, the minimum over the ground truth's symmetric equivalents. The paper writes a sum
  over the points; we take the mean, i.e. the sum divided by N_loss, so that the value reads in metres
  (a 0.1 m shift along x gives 0.1) and stays on the scale of the classifier's cross-entropy instead of
  outweighing it a thousandfold.
- `loss: disentangled` (an option; the paper's loss is `points`): the same point distance taken three
  times, each time with only one of rotation, translation and scale predicted and the other two from
  the ground truth, summed (the disentangled loss of CosyPose, after Simonelli et al. 2019). With the
  entangled loss a large translation error gives every point an L1 gradient of the same sign, which
  cancels in the rotation's gradient: rotation only starts to learn once translation is nearly right.
  Disentangled, each part gets its own signal from the first step. Zero at the ground truth and
  symmetry-aware like the points loss; validation reports the points distance either way. Its
  `rotation_weight` scales the rotation part: the three parts share one network, and while translation
  and scale are far off their gradients dominate the shared layers, so that with weight 1 a small
  network learns to correct yaw much later than the rest, or not within a CPU budget.
- Classifier loss: binary cross-entropy of the classification logit against "is the current
  (input) pose aligned", 20 cm / 20 deg / 20 % with per-axis scale error and the object's symmetry.

Each object is either an update example (alignment loss only) or a classifier example (classifier
loss only): the two never cross over. Detections without ground truth carry neither.
"""

from __future__ import annotations

import torch
from torch import Tensor

from multisparc.geometry import AlignmentThresholds, Pose, SymmetrySpec, is_aligned

#: The paper's rule for a correct alignment (and thus for the classifier's labels).
LABEL_THRESHOLDS = AlignmentThresholds(t=0.2, r_deg=20.0, s=0.2)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of values over mask (same shape); 0 (still attached to the graph) when the mask is empty."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def symmetric_point_distances(pred: Pose, gt: Pose, points: Tensor, sym_rotations: Tensor) -> Tensor:
    """Mean L1 point distance (...) between pred and the closest symmetric equivalent of gt.

    pred, gt: poses of batch shape (...); points (..., N, 3) CAD frame; sym_rotations (..., K, 3, 3)
    rotations about the CAD up axis that leave each model unchanged (`geometry.symmetry_rotations`).
    The ground truth's equivalents are its rotation turned by each R_k, with its scale and translation:
    (R_gt R_k, t_gt, s_gt), the equivalence of the Scan2CAD benchmark that the classifier labels and the
    evaluation use (`geometry.errors`), so that a pose the loss takes as exact is aligned there too
    (for a model whose x and z scales differ, a quarter turn with the same scale is not quite the same
    surface, and the benchmark counts it right). Metres.
    """
    pred_points = pred.apply(points)  # (..., N, 3)
    turned_R = gt.R.unsqueeze(-3) @ sym_rotations  # (..., K, 3, 3)
    gt_per_turn = Pose(
        turned_R, gt.t.unsqueeze(-2).expand(*turned_R.shape[:-2], 3), gt.s.unsqueeze(-2).expand(*turned_R.shape[:-2], 3)
    )
    gt_points = gt_per_turn.apply(points.unsqueeze(-3))  # (..., K, N, 3)
    l1 = (pred_points.unsqueeze(-3) - gt_points).abs().sum(dim=-1)  # (..., K, N)
    return l1.mean(dim=-1).amin(dim=-1)


def disentangled_point_distances(
    pred: Pose, gt: Pose, points: Tensor, sym_rotations: Tensor, rotation_weight: float = 1.0
) -> Tensor:
    """Disentangled mean L1 point distance (...) (module docstring), arguments as in
    `symmetric_point_distances`: rotation_weight times the rotation part up to symmetry, plus
    ||t - t_gt||_1 (every point moves by the translation error), plus the mean L1 shift of the points by
    the scale error. Metres."""
    rotation = symmetric_point_distances(Pose(pred.R, gt.t, gt.s), gt, points, sym_rotations)
    translation = (pred.t - gt.t).abs().sum(dim=-1)
    scaled = Pose(gt.R, gt.t, pred.s).apply(points) - gt.apply(points)
    return rotation_weight * rotation + translation + scaled.abs().sum(dim=-1).mean(dim=-1)


#: The alignment losses by their config name.
POINT_LOSSES = {"points": symmetric_point_distances, "disentangled": disentangled_point_distances}


def alignment_loss(
    pred: Pose,
    gt: Pose,
    points: Tensor,
    sym_rotations: Tensor,
    mask: Tensor,
    kind: str = "points",
    rotation_weight: float = 1.0,
) -> Tensor:
    """Scalar alignment loss: the `kind` point distance (POINT_LOSSES) averaged over the objects where
    mask (...) is True.

    pred, gt of batch shape (...), e.g. (n,) objects; points (..., N_loss, 3); sym_rotations
    (..., K, 3, 3); mask (...) bool = true detection and update example; rotation_weight: of the
    disentangled loss's rotation part (the points loss has no parts: it must be 1 there).
    """
    if kind not in POINT_LOSSES:
        raise ValueError(f"alignment loss must be one of {sorted(POINT_LOSSES)}, got {kind!r}")
    if kind == "disentangled":
        distances = disentangled_point_distances(pred, gt, points, sym_rotations, rotation_weight)
    elif rotation_weight != 1.0:
        raise ValueError(f"rotation_weight {rotation_weight} needs the disentangled loss, not {kind!r}")
    else:
        distances = symmetric_point_distances(pred, gt, points, sym_rotations)
    return _masked_mean(distances, mask)


def classifier_labels(current: Pose, gt: Pose, sym: SymmetrySpec) -> Tensor:
    """Float labels (...): 1 where the current pose is aligned with gt (LABEL_THRESHOLDS, per-axis scale).

    current, gt of batch shape (...); sym: one Scan2CAD tag per object, nested like the batch shape.
    """
    aligned = is_aligned(current, gt, sym, LABEL_THRESHOLDS, scale_mode="per_axis")
    return aligned.to(current.t.dtype)


def classifier_loss(logit: Tensor, label: Tensor, mask: Tensor) -> Tensor:
    """Scalar BCE-with-logits of logit (...) against label (...) in {0, 1}, averaged where mask is True.

    mask (...) bool = true detection and classifier example.
    """
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, label, reduction="none")
    return _masked_mean(bce, mask)


def ranking_loss(margin: Tensor, mask: Tensor) -> Tensor:
    """Scalar logistic ranking loss `softplus(-margin)` averaged where mask (...) is True: margin (...) is
    the logit of the aligned pose of a pair minus the other's, so the loss falls as it grows."""
    return _masked_mean(torch.nn.functional.softplus(-margin), mask)
