"""Geometric verification of a posed CAD model against the observation (camera frame, metres).

- `fit_score`: how closely the observed points of a detection lie on the model's camera-facing surface;
- `free_space_violation`: the share of model samples in front of the observed depth (space the camera
  saw through);
- `box_overlap`: the IoU of the model's projected bounding box (clipped to the image) with the
  detection's box, which a fit that slid off its object loses;
- `geometric_scores`: the three together, in [0, 1], of H poses of one CAD at once.

The first three have batched forms (`fit_scores`, ...) scoring H poses at once; the single forms call them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multisparc.inference.depth_fit import SurfaceSamples, dot, surface_pairs


def fit_score(
    observed: np.ndarray, model: SurfaceSamples, R: np.ndarray, t: np.ndarray, tau: float, back_faces: bool = False
) -> float:
    """How well the model under pose (R, t) fits observed (N, 3) camera frame, in [0, 1]:
    `1 - sqrt(mean(d^2)) / tau` with d per point the distance to the tangent plane of its nearest CAD
    sample when that sample is nearer than tau and faces the camera (or, with back_faces, faces either
    way: `fit_scores`), else tau. (The plane distance does not charge the gaps between surface samples.)"""
    return float(fit_scores(observed, [model], R[None], t[None], tau, back_faces)[0])


def fit_scores(
    observed: np.ndarray,
    models: Sequence[SurfaceSamples],
    R: np.ndarray,
    t: np.ndarray,
    tau: float,
    back_faces: bool = False,
) -> np.ndarray:
    """`fit_score` (H,) of H models (one CAD at H scales) under poses R (H, 3, 3), t (H, 3).

    back_faces: a point whose nearest sample faces away from the camera is scored by its plane distance
    too, instead of charged tau. With depth noise comparable to a part's thickness (a seat, a leg, a
    shelf), the points behind a thin part's front face find its back face nearest: charging them favours
    poses moved towards the camera, and the noisier the depth the more."""
    distance, q, n, facing = surface_pairs(models, observed, R, t, tau)
    plane = np.abs(dot(n, observed[None] - q))
    paired = distance < tau if back_faces else facing & (distance < tau)
    clipped = np.where(paired, np.minimum(plane, tau), tau)
    # Clipped: at RMS = tau the rounding of sqrt may leave -1e-16.
    return np.clip(1.0 - np.sqrt(np.mean(clipped**2, axis=1)) / tau, 0.0, 1.0)


def free_space_violation(model_points: np.ndarray, depth: np.ndarray, K: np.ndarray, tolerance: float) -> float:
    """Fraction in [0, 1] of CAD samples (M, 3) camera frame, among those that project onto a pixel with a
    valid depth, lying in front of the observed surface by more than `tolerance` metres: the ray to that
    surface would have passed through the model, so the pose contradicts the depth map."""
    return float(free_space_violations(model_points[None], depth, K, tolerance)[0])


def free_space_violations(model_points: np.ndarray, depth: np.ndarray, K: np.ndarray, tolerance: float) -> np.ndarray:
    """`free_space_violation` (H,) of H placed models, samples (H, M, 3) camera frame."""
    z, u, v, seen = _pixels(model_points, K, *depth.shape[::-1])
    observed = np.asarray(depth[v, u], dtype=np.float64)
    valid = seen & np.isfinite(observed) & (observed > 0)
    counted = valid.sum(axis=1)
    violating = (valid & (z < np.where(valid, observed, 0.0) - tolerance)).sum(axis=1)
    return np.where(counted > 0, violating / np.maximum(counted, 1), 0.0)


def box_overlap(model_points: np.ndarray, K: np.ndarray, box: np.ndarray, width: int, height: int) -> float:
    """IoU in [0, 1] of the bounding box of model samples (M, 3) camera frame, projected with K (3, 3) and
    clipped to the width x height image, with the detection box [x1, y1, x2, y2] pixels; 0 when no
    sample lies in front of the camera."""
    return float(box_overlaps(model_points[None], K, box, width, height)[0])


def box_overlaps(model_points: np.ndarray, K: np.ndarray, box: np.ndarray, width: int, height: int) -> np.ndarray:
    """`box_overlap` (H,) of H placed models, samples (H, M, 3) camera frame."""
    front = model_points[..., 2] > 1e-6
    uv = model_points @ K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = uv[..., 0] / uv[..., 2], uv[..., 1] / uv[..., 2]
    projected = np.stack(
        [
            np.where(front, u, np.inf).min(axis=1),
            np.where(front, v, np.inf).min(axis=1),
            np.where(front, u, -np.inf).max(axis=1),
            np.where(front, v, -np.inf).max(axis=1),
        ],
        axis=1,
    )
    projected = np.clip(projected, 0.0, [width - 1, height - 1, width - 1, height - 1])
    x1, y1, x2, y2 = (float(value) for value in box)
    overlap_x = np.maximum(0.0, np.minimum(projected[:, 2], x2) - np.maximum(projected[:, 0], x1))
    inter = overlap_x * np.maximum(0.0, np.minimum(projected[:, 3], y2) - np.maximum(projected[:, 1], y1))
    union = (projected[:, 2] - projected[:, 0]) * (projected[:, 3] - projected[:, 1]) + (x2 - x1) * (y2 - y1) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(front.any(axis=1), iou, 0.0)


def _pixels(points: np.ndarray, K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Depth z (H, M), pixel column u and row v (H, M) int (0 where not seen) of camera-frame points
    (H, M, 3), and whether each lies in front of the camera on a pixel of the width x height image."""
    z = points[..., 2]
    uv = points @ K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.rint(uv[..., 0] / uv[..., 2])
        v = np.rint(uv[..., 1] / uv[..., 2])
    seen = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return z, np.where(seen, u, 0).astype(np.int64), np.where(seen, v, 0).astype(np.int64), seen


def geometric_scores(
    observed: np.ndarray,
    models: Sequence[SurfaceSamples],
    R: np.ndarray,
    t: np.ndarray,
    observation_depth: np.ndarray,
    K: np.ndarray,
    box: np.ndarray,
    tau: float,
    overlap_power: float,
    back_faces: bool = False,
) -> np.ndarray:
    """Agreement in [0, 1] (H,) of H models (one CAD at H scales) under poses R (H, 3, 3), t (H, 3) with a
    detection: `fit_score` of its observed points (N, 3) camera frame (with `back_faces` as there), times
    the share of model samples not in front of the observed depth (H, W) by more than tau metres, times
    `box_overlap` with the detection's box (or its mask's, `stages.overlap_box`) to `overlap_power`.

    Occlusion by other objects costs little: their pixels are outside the detection's mask (so not in
    `observed`), and a model behind an occluder is behind the observed depth, which is no violation.
    """
    placed = np.stack([model.points for model in models]) @ R.transpose(0, 2, 1) + t[:, None]
    height, width = observation_depth.shape
    overlap = box_overlaps(placed, K, box, width, height)
    violation = free_space_violations(placed, observation_depth, K, tau)
    scores = fit_scores(observed, models, R, t, tau, back_faces) * (1.0 - violation) * overlap**overlap_power
    return np.where(overlap > 0.0, scores, 0.0)
