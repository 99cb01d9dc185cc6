"""Per-object errors of one image's alignment against its ground truth, before and after refinement.

Detections and ground-truth objects are paired by id, as synthetic bundles number them (a detection
carries its object's instance id). Errors follow `multisparc.geometry.errors`: translation in metres,
rotation in degrees up to the ground truth's symmetry, scale `mean(|s / s_gt - 1|)` (per axis, as the
paper's Table 1); an object is aligned within 20 cm, 20 deg and 20 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from multisparc.datasets.bundle import ObjectPose
from multisparc.geometry import DEFAULT_THRESHOLDS, AlignmentThresholds, Pose, pose_errors, quat_to_matrix
from multisparc.inference.result import AlignmentResult


@dataclass(frozen=True)
class PoseErrors:
    """Errors of one pose: t metres, r_deg degrees, s relative; aligned by the thresholds."""

    t: float
    r_deg: float
    s: float
    aligned: bool


@dataclass(frozen=True)
class ObjectErrors:
    """One detected object: its initial pose (of the chosen hypothesis) and final pose against the truth."""

    id: int
    category: str
    sym: str
    initial: PoseErrors
    final: PoseErrors
    score: float


@dataclass(frozen=True)
class ImageErrors:
    """An image's objects with ground truth, the detections without (false ones: id -> learned score),
    the ground-truth ids no detection found, and the thresholds that told aligned objects."""

    objects: list[ObjectErrors]
    false_detections: dict[int, float]
    missed: list[int]
    thresholds: AlignmentThresholds = DEFAULT_THRESHOLDS


def object_poses(objects: Sequence[ObjectPose]) -> Pose:
    """The poses (N,) float64 of N objects (gt.json or predictions.json records)."""
    q, t, s = (torch.from_numpy(np.stack([getattr(obj, name) for obj in objects]).astype(np.float64)) for name in "qts")
    return Pose(quat_to_matrix(q), t, s)


def compare_poses(
    pred: Pose, gt: Pose, sym: list[str], thresholds: AlignmentThresholds = DEFAULT_THRESHOLDS
) -> list[PoseErrors]:
    """Errors of poses pred (N,) against gt (N,) up to each ground truth's symmetry, aligned by the thresholds."""
    values = pose_errors(pred, gt, sym, "per_axis")
    t, r, s = (values[name].tolist() for name in ("t", "r_deg", "s"))
    return [
        PoseErrors(t[k], r[k], s[k], t[k] <= thresholds.t and r[k] <= thresholds.r_deg and s[k] <= thresholds.s)
        for k in range(len(t))
    ]


def image_errors(
    result: AlignmentResult, gt: Sequence[ObjectPose], thresholds: AlignmentThresholds = DEFAULT_THRESHOLDS
) -> ImageErrors:
    """Errors of every aligned detection whose id is a ground-truth id (module docstring)."""
    truth = {obj.id: obj for obj in gt}
    matched = [k for k, obj in enumerate(result.objects) if obj.id in truth]
    found = {result.objects[k].id for k in matched}
    false_detections = {obj.id: float(obj.score) for obj in result.objects if obj.id not in truth}
    missed = [obj.id for obj in gt if obj.id not in found]
    if not matched:
        return ImageErrors([], false_detections, missed, thresholds)
    trajectory = result.chosen_trajectory()  # (S, K)
    index = torch.as_tensor(matched)
    initial, final = trajectory.index((0, index)), trajectory.index((-1, index))
    truths = [truth[result.objects[k].id] for k in matched]
    gt_pose, sym = object_poses(truths), [obj.sym for obj in truths]
    before = compare_poses(initial.to(torch.float64), gt_pose, sym, thresholds)
    after = compare_poses(final.to(torch.float64), gt_pose, sym, thresholds)
    objects = [
        ObjectErrors(obj.id, obj.category, obj.sym, before[i], after[i], float(result.objects[k].score))
        for i, (k, obj) in enumerate(zip(matched, truths, strict=True))
    ]
    return ImageErrors(objects, false_detections, missed, thresholds)


def format_errors_table(errors: ImageErrors) -> str:
    """A plain-text table, one row per object: initial and aligned errors (cm, deg, %), score, aligned."""
    header = (
        f"{'id':>4}  {'class':<9} {'sym':>4} | {'t0 cm':>6} {'r0 deg':>6} {'s0 %':>5} {'ok0':>3} | "
        f"{'t cm':>6} {'r deg':>6} {'s %':>5} {'score':>5}  aligned"
    )
    lines = [header, "-" * len(header)]
    for obj in errors.objects:
        a, b = obj.initial, obj.final
        lines.append(
            f"{obj.id:>4}  {obj.category:<9} {obj.sym:>4} | {100 * a.t:6.1f} {a.r_deg:6.1f} {100 * a.s:5.1f} "
            f"{'yes' if a.aligned else 'no':>3} | {100 * b.t:6.1f} {b.r_deg:6.1f} {100 * b.s:5.1f} "
            f"{obj.score:5.2f}  {'yes' if b.aligned else 'no'}"
        )
    n, limits = len(errors.objects), errors.thresholds
    lines.append("-" * len(header))
    lines.append(
        f"aligned {sum(o.final.aligned for o in errors.objects)} of {n} (initial poses: "
        f"{sum(o.initial.aligned for o in errors.objects)} of {n}) within {100 * limits.t:g} cm, "
        f"{limits.r_deg:g} deg, {100 * limits.s:g} %"
    )
    lines.append("t0, r0, s0: the chosen hypothesis before refinement; rotation up to the symmetry, scale per axis")
    for det_id, score in errors.false_detections.items():
        lines.append(f"false detection {det_id}: no object there, learned score {score:.2f}")
    for gt_id in errors.missed:
        lines.append(f"object {gt_id}: missed by the detector")
    return "\n".join(lines)
