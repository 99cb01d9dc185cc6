"""Geometric verification of a posed CAD model against the observation (camera frame, metres).

- `fit_score`: how closely the observed points of a detection lie on the model's camera-facing surface;
- `free_space_violation`: the share of model samples in front of the observed depth (space the camera
  saw through);
- `box_overlap`: the IoU of the model's projected bounding box (clipped to the image) with the
  detection's box, which a fit that slid off its object loses;
- `geometric_score`: the three together, in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

from multisparc.inference.depth_fit import SurfaceSamples


def fit_score(observed: np.ndarray, model: SurfaceSamples, R: np.ndarray, t: np.ndarray, tau: float) -> float:
    """How well the model under pose (R, t) fits observed (N, 3) camera frame, in [0, 1]:
    `1 - sqrt(mean(d^2)) / tau` with d per point the distance to the tangent plane of its nearest CAD
    sample when that sample is nearer than tau and faces the camera, else tau. (The plane distance does
    not charge the gaps between surface samples.)"""
    distance, q, n, facing = model.pairs(observed, R, t)
    plane = np.abs(np.einsum("nc,nc->n", n, observed - q))
    clipped = np.where(facing & (distance < tau), np.minimum(plane, tau), tau)
    # Clipped: at RMS = tau the rounding of sqrt may leave -1e-16.
    return min(1.0, max(0.0, 1.0 - math.sqrt(float(np.mean(clipped**2))) / tau))


def free_space_violation(model_points: np.ndarray, depth: np.ndarray, K: np.ndarray, tolerance: float) -> float:
    """Fraction in [0, 1] of CAD samples (M, 3) camera frame, among those that project onto a pixel with a
    valid depth, lying in front of the observed surface by more than `tolerance` metres: the ray to that
    surface would have passed through the model, so the pose contradicts the depth map."""
    z = model_points[:, 2]
    front = z > 1e-6
    uv = model_points[front] @ K.T
    u = np.rint(uv[:, 0] / uv[:, 2]).astype(np.int64)
    v = np.rint(uv[:, 1] / uv[:, 2]).astype(np.int64)
    height, width = depth.shape
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    observed = np.asarray(depth[v[inside], u[inside]], dtype=np.float64)
    valid = np.isfinite(observed) & (observed > 0)
    if not valid.any():
        return 0.0
    return float(np.mean(z[front][inside][valid] < observed[valid] - tolerance))


def box_overlap(model_points: np.ndarray, K: np.ndarray, box: np.ndarray, width: int, height: int) -> float:
    """IoU in [0, 1] of the bounding box of model samples (M, 3) camera frame, projected with K (3, 3) and
    clipped to the width x height image, with the detection box [x1, y1, x2, y2] pixels; 0 when no
    sample lies in front of the camera."""
    front = model_points[model_points[:, 2] > 1e-6]
    if not len(front):
        return 0.0
    uv = front @ K.T
    uv = uv[:, :2] / uv[:, 2:3]
    projected = np.concatenate([uv.min(axis=0), uv.max(axis=0)])
    projected = np.clip(projected, 0.0, [width - 1, height - 1, width - 1, height - 1])
    x1, y1, x2, y2 = (float(v) for v in box)
    overlap_x = max(0.0, min(projected[2], x2) - max(projected[0], x1))
    inter = overlap_x * max(0.0, min(projected[3], y2) - max(projected[1], y1))
    union = (projected[2] - projected[0]) * (projected[3] - projected[1]) + (x2 - x1) * (y2 - y1) - inter
    return float(inter / union) if union > 0 else 0.0


def geometric_score(
    observed: np.ndarray,
    model: SurfaceSamples,
    R: np.ndarray,
    t: np.ndarray,
    observation_depth: np.ndarray,
    K: np.ndarray,
    box: np.ndarray,
    tau: float,
    overlap_power: float,
) -> float:
    """Agreement in [0, 1] of the model under pose (R (3, 3), t (3,)) with a detection: `fit_score` of its
    observed points (N, 3) camera frame, times the share of model samples not in front of the observed
    depth (H, W) by more than tau metres, times `box_overlap` with the detection box to `overlap_power`.

    Occlusion by other objects costs little: their pixels are outside the detection's mask (so not in
    `observed`), and a model behind an occluder is behind the observed depth, which is no violation.
    """
    placed = model.points @ R.T + t
    height, width = observation_depth.shape
    overlap = box_overlap(placed, K, box, width, height)
    if overlap == 0.0:
        return 0.0
    violation = free_space_violation(placed, observation_depth, K, tau)
    return fit_score(observed, model, R, t, tau) * (1.0 - violation) * overlap**overlap_power
