"""A classical depth-only baseline: back-projected depth, extent-based scale, principal-direction yaw, ICP.

What a practitioner tries before a learned method. Per detection, in the camera frame, metres:

1. Points. The pixels of the detection's mask inside its (clipped) box that have a valid depth (finite,
   > 0), or every such pixel of the box when the mask is missing or sees fewer than `min_points` of them,
   back-projected with K (z-depth); the mask may first be eroded by `erode_pixels` (0 by default: on
   noisy masks it trades scale for rotation errors, on exact ones it only costs). Points farther than
   the class's largest diagonal from the median
   point are dropped (background seen through the box); at most `max_points` are kept, drawn by a
   generator seeded by (seed, detection id).
2. Hypotheses. The network's initial poses (`multisparc.inference.initialisation`: `n_hypotheses`
   azimuths 90 deg apart about gravity up), each turned about gravity up by the one angle in
   [-45, 45] deg that brings the CAD's x axis of the first hypothesis onto the points' principal
   horizontal direction (left at 0 when the horizontal spread is nearly round). The four hypotheses stay
   90 deg apart: together they put either CAD axis along that direction, facing either way.
3. Scale and centre, per hypothesis. The points' robust extents (`percentiles`, 2nd to 98th) along the
   hypothesis's object axes over the CAD's extents give one ratio per axis. A single view sees the
   object's depth only in part, so the scale is isotropic, the mean of the two largest ratios, then
   clamped per axis to the class's size range (`multisparc.categories.scale_range`): the class's size
   statistics are the prior. The centre is the middle of the points' robust box, pushed away from the
   camera along each object axis by half the extent the points do not cover.
4. ICP with gravity kept: 4 degrees of freedom (yaw about gravity up and translation), the scale held.
   Written here rather than taken from trimesh (`trimesh.registration.icp`: 6-DoF point-to-point) or
   Open3D (6-DoF, and a heavy dependency): neither constrains the rotation to gravity, drops back-side
   pairs, or mixes point-to-plane with point-to-point terms.
   Each observed point is paired with its nearest CAD surface point (samples of the scaled CAD, one kd
   tree per hypothesis); pairs whose CAD normal faces away from the camera (the model's back side) or
   that lie farther apart than a trimming distance, shrinking from `max_distance` to
   2 x `inlier_distance` over the iterations, are dropped. A damped Gauss-Newton step minimises the
   point-to-plane distances plus `point_to_point_weight` times the point-to-point ones (the latter fix
   the directions a plane leaves free). After `rounds - 1` further scale estimates in the refined axes,
   ICP runs again.
5. Score in [0, 1]: `1 - sqrt(mean(d^2)) / tau` over all observed points, tau = inlier_distance, d the
   distance to the tangent plane of the nearest CAD sample when that sample lies within tau and faces the
   camera, else tau (a point matched to the model's back side, or to nothing near, is an outlier),
   times 1 minus the fraction of CAD samples that lie more than tau in front of the observed depth at their
   pixel (free space the model would fill, `free_space_violation`; it tells a sofa from one turned round).
   It is 1 for a perfect fit and 0 when no point lies within tau; the hypothesis of highest score (lowest
   truncated residual) wins. A detection with fewer than `min_points` valid points keeps the first
   initial pose with score 0.

The result is an `AlignmentResult` like the network's, so `predictions.json` and the evaluation treat
both alike: its trajectory has 3 steps (the network's initial poses, the ICP start after step 3, the
ICP result) and its logits are those of the scores (clipped away from 0 and 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion
from scipy.spatial import cKDTree

from multisparc.cad import CadIndex, UnknownCadId
from multisparc.categories import category_info, scale_range
from multisparc.datasets.bundle import BundleError, Detection, Observation, SceneBundle, read_bundle
from multisparc.geometry import Pose
from multisparc.inference.initialisation import InitialisationConfig, box_pixel_ranges, initial_poses
from multisparc.inference.pipeline import clip_detections
from multisparc.inference.result import AlignmentResult
from multisparc.inference.timers import StageTimer

# Scores are kept as logits in AlignmentResult; clipping keeps a score of 0 or 1 finite there.
_SCORE_EPS = 1e-6


@dataclass(frozen=True)
class IcpConfig:
    """Settings of the ICP baseline (module docstring). Lengths in metres.

    max_points: observed points kept per detection; min_points: fewer valid points (or ICP pairs) than
    this and the detection keeps its initial pose with score 0. model_points: CAD surface samples.
    iterations: ICP iterations per round; rounds: scale estimates, each followed by ICP.
    max_distance / inlier_distance: the trimming distance shrinks from the first to twice the second;
    the second is also the tau of the score. point_to_point_weight: weight of the point-to-point term.
    damping: added to the normal equations (Levenberg). tolerance: an iteration moving less than this
    (metres and radians) ends ICP. min_anisotropy: the principal horizontal direction sets the yaw only
    when its standard deviation exceeds the perpendicular one by this factor. n_hypotheses: azimuths.
    erode_pixels: erosion of the mask before its pixels are read. percentiles: (low, high) percentiles
    of the points along each object axis that bound their robust extent.
    """

    max_points: int = 1000
    min_points: int = 30
    model_points: int = 4000
    iterations: int = 20
    rounds: int = 2
    max_distance: float = 0.3
    inlier_distance: float = 0.05
    point_to_point_weight: float = 0.1
    damping: float = 1e-6
    tolerance: float = 1e-4
    min_anisotropy: float = 1.2
    n_hypotheses: int = 4
    erode_pixels: int = 0
    percentiles: tuple[float, float] = (2.0, 98.0)

    def __post_init__(self) -> None:
        for name in ("max_points", "min_points", "model_points", "iterations", "rounds", "n_hypotheses"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"IcpConfig.{name} must be a positive integer, got {value!r}")
        if not 0 < self.inlier_distance < self.max_distance:
            raise ValueError(
                f"IcpConfig needs 0 < inlier_distance < max_distance, got {self.inlier_distance}, {self.max_distance}"
            )
        for name in ("point_to_point_weight", "damping", "tolerance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"IcpConfig.{name} must be non-negative, got {getattr(self, name)!r}")
        if isinstance(self.erode_pixels, bool) or not isinstance(self.erode_pixels, int) or self.erode_pixels < 0:
            raise ValueError(f"IcpConfig.erode_pixels must be a non-negative integer, got {self.erode_pixels!r}")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"IcpConfig.percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles!r}")
        if not self.min_anisotropy >= 1:
            raise ValueError(f"IcpConfig.min_anisotropy must be at least 1, got {self.min_anisotropy!r}")


def rotation_about(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotations (..., 3, 3) by angle (...) radians about the unit axis (3,) (right-handed), Rodrigues."""
    angle = np.asarray(angle, dtype=np.float64)
    x, y, z = np.asarray(axis, dtype=np.float64)
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    c, s = np.cos(angle)[..., None, None], np.sin(angle)[..., None, None]
    return c * np.eye(3) + s * cross + (1.0 - c) * np.outer([x, y, z], [x, y, z])


def detection_points(
    observation: Observation, detection: Detection, config: IcpConfig, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """Camera-frame points (N, 3) in metres of one detection and which pixels gave them ("mask", "box"),
    or an empty (0, 3) array and "fallback" when fewer than `min_points` pixels have a valid depth.

    The box must lie inside the image (`clip_detections`); depth 0 or NaN is unknown (module docstring, 1).
    """
    rows, cols = box_pixel_ranges(detection.bbox)
    depth = np.asarray(observation.depth[rows, cols], dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    source = "box"
    if detection.mask is not None:
        mask = np.asarray(detection.mask[rows, cols], dtype=bool)
        if config.erode_pixels > 0:
            # Depth at an object's outline mixes object and background (and a mask is never exact there).
            eroded = binary_erosion(mask, iterations=config.erode_pixels)
            if (valid & eroded).sum() >= config.min_points:
                mask = eroded
        in_mask = valid & mask
        if in_mask.sum() >= config.min_points:
            valid, source = in_mask, "mask"
    if valid.sum() < config.min_points:
        return np.zeros((0, 3)), "fallback"
    j, i = np.nonzero(valid)
    z = depth[j, i]
    uv1 = np.stack([i + cols.start, j + rows.start, np.ones_like(z)], axis=1).astype(np.float64)
    points = z[:, None] * (uv1 @ np.linalg.inv(observation.camera.K).T)
    # Background through the box (floor, wall) lies beyond any point of an object of this class.
    reach = float(np.linalg.norm(category_info(detection.category).max_size))
    points = points[np.linalg.norm(points - np.median(points, axis=0), axis=1) <= reach]
    if len(points) < config.min_points:
        return np.zeros((0, 3)), "fallback"
    if len(points) > config.max_points:
        points = points[np.sort(rng.choice(len(points), config.max_points, replace=False))]
    return points, source


def principal_yaw_offset(points: np.ndarray, up: np.ndarray, axis: np.ndarray, min_anisotropy: float) -> float:
    """Angle in [-pi/4, pi/4] about `up` (3,) that turns the horizontal unit `axis` (3,) onto the principal
    horizontal direction of points (N, 3), modulo 90 deg; 0 when the horizontal spread is nearly round
    (standard deviations within a factor min_anisotropy)."""
    centred = points - points.mean(axis=0)
    flat = np.stack([centred @ axis, centred @ np.cross(up, axis)], axis=1)
    values, vectors = np.linalg.eigh(np.cov(flat.T))  # ascending
    if values[1] <= 0 or values[1] < min_anisotropy**2 * values[0]:
        return 0.0
    angle = math.atan2(vectors[1, 1], vectors[0, 1])
    return angle - (math.pi / 2) * round(angle / (math.pi / 2))


def scale_and_centre(
    points: np.ndarray,
    R: np.ndarray,
    cad_extent: np.ndarray,
    category: str,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Scales (H, 3) and object centres (H, 3) camera frame of hypotheses with rotations R (H, 3, 3), from
    points (N, 3) camera frame (module docstring, step 3); cad_extent (3,) the CAD's bounding-box size."""
    mean = points.mean(axis=0)
    local = np.einsum("nc,hca->hna", points - mean, R)  # coordinates along each hypothesis's object axes
    low, high = np.percentile(local, percentiles, axis=1)  # (H, 3) each
    observed = high - low
    ratio = np.sort(observed / cad_extent, axis=1)
    iso = ratio[:, -2:].mean(axis=1)
    smallest, largest = scale_range(category, cad_extent)
    scale = np.clip(iso[:, None], smallest, largest)
    axes = R.transpose(0, 2, 1)  # axes[h, a] = object axis a in the camera frame
    centre = mean + np.einsum("hac,ha->hc", axes, 0.5 * (low + high))
    view = centre / np.linalg.norm(centre, axis=1, keepdims=True)
    away = np.sign(np.einsum("hac,hc->ha", axes, view))
    deficit = np.maximum(scale * cad_extent - observed, 0.0)
    centre = centre + np.einsum("hac,ha->hc", axes, 0.5 * deficit * away)
    return scale, centre


class _Model:
    """A CAD's surface samples scaled by s (CAD frame after the scale, metres) with a kd tree, for one
    hypothesis: poses move observed points into this frame, `R^T (p - t)`, so the tree is built once."""

    def __init__(self, points: np.ndarray, normals: np.ndarray, scale: np.ndarray) -> None:
        self.points = points * scale
        normals = normals / scale  # the inverse transpose of the scaling keeps normals normal
        self.normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
        self.tree = cKDTree(self.points)

    def pairs(
        self, observed: np.ndarray, R: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For observed (N, 3) camera frame under pose (R, t): distances (N,) to the nearest model points,
        those points (N, 3) and normals (N, 3) in the camera frame, and whether each faces the camera (N,)."""
        distance, index = self.tree.query((observed - t) @ R)
        points = self.points[index] @ R.T + t
        normals = self.normals[index] @ R.T
        facing = np.einsum("nc,nc->n", normals, observed) < 0
        return distance, points, normals, facing


def fit_score(observed: np.ndarray, model: _Model, R: np.ndarray, t: np.ndarray, tau: float) -> float:
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


def icp(
    observed: np.ndarray,
    model: _Model,
    R: np.ndarray,
    t: np.ndarray,
    centre_offset: np.ndarray,
    up: np.ndarray,
    config: IcpConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine the yaw about `up` (3,) and the translation of pose (R (3, 3), t (3,)) so that the model fits
    observed (N, 3) camera frame (module docstring, step 4); centre_offset (3,) is s * the CAD's box centre,
    the point the yaw turns about. Returns the refined (R, t)."""
    w = config.point_to_point_weight
    final = 2.0 * config.inlier_distance
    for iteration in range(config.iterations):
        fraction = iteration / max(config.iterations - 1, 1)
        trim = config.max_distance * (final / config.max_distance) ** fraction
        distance, q, n, facing = model.pairs(observed, R, t)
        keep = facing & (distance <= trim)
        if keep.sum() < config.min_points:
            break
        p, q, n = observed[keep], q[keep], n[keep]
        centre = t + R @ centre_offset
        arm = np.cross(up, q - centre)  # d q / d yaw
        # Rows of the Jacobian in (yaw, tx, ty, tz): point-to-plane n . dq, point-to-point dq.
        plane = np.concatenate([np.einsum("nc,nc->n", n, arm)[:, None], n], axis=1)
        plane_residual = np.einsum("nc,nc->n", n, q - p)
        A = plane.T @ plane
        b = plane.T @ plane_residual
        if w > 0:  # the point-to-point rows [arm, I] summed in closed form
            gap = q - p
            A[0, 0] += w * float(np.sum(arm * arm))
            A[0, 1:] += w * arm.sum(axis=0)
            A[1:, 0] += w * arm.sum(axis=0)
            A[1:, 1:] += w * len(p) * np.eye(3)
            b[0] += w * float(np.sum(arm * gap))
            b[1:] += w * gap.sum(axis=0)
        step = -np.linalg.solve(A + config.damping * np.eye(4), b)
        turn = rotation_about(up, step[0])
        R = turn @ R
        t = centre + turn @ (t - centre) + step[1:]
        if abs(step[0]) < config.tolerance and np.linalg.norm(step[1:]) < config.tolerance:
            break
    return R, t


class IcpAligner:
    """The ICP baseline with the interface of `multisparc.inference.Aligner` (module docstring).

    Args:
        cads: the CAD index the detections' `cad` ids refer to.
        config: ICP settings.
        initialisation: the initial-pose settings (its n_hypotheses is replaced by the config's).
        seed: seeds the choice of observed points.
    """

    def __init__(
        self,
        cads: CadIndex,
        config: IcpConfig | None = None,
        initialisation: InitialisationConfig | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.cads = cads
        self.config = config or IcpConfig()
        self.initialisation = replace(initialisation or InitialisationConfig(), n_hypotheses=self.config.n_hypotheses)
        self.seed = seed

    def align(
        self, observation: Observation, detections: Sequence[Detection], scene_dir: str | Path | None = None
    ) -> AlignmentResult:
        """Align every detection of one image; `scene_dir` only names files in error messages.

        Boxes are clipped or skipped as by `Aligner`. Raises BundleError when the depth map is missing and
        UnknownCadId for a CAD not in the index.
        """
        if observation.depth is None:
            folder = Path(scene_dir) if scene_dir is not None else Path()
            raise BundleError(folder / "depth.npy", "missing from the scene bundle: the ICP baseline needs depth")
        for det in detections:
            if det.cad not in self.cads:
                raise UnknownCadId(
                    self.cads.source, f"detection {det.id} asks for CAD {det.cad!r}, which this CAD index does not hold"
                )
        timer = StageTimer()
        kept, skipped = clip_detections(observation, detections)
        with timer.stage("initialisation"):
            init = initial_poses(observation, kept, self.cads, self.initialisation)
        up = init.gravity.up
        R0, t0, s0 = (value.numpy() for value in (init.poses.R, init.poses.t, init.poses.s))
        n_hyp, n_det = len(R0), len(kept)
        start = [R0.copy(), t0.copy(), s0.copy()]
        final = [R0.copy(), t0.copy(), s0.copy()]
        scores = np.zeros((3, n_hyp, n_det))
        for k, det in enumerate(kept):
            with timer.stage("points"):
                rng = np.random.default_rng([self.seed, det.id % 2**64])
                points, _ = detection_points(observation, det, self.config, rng)
            if not len(points):
                continue  # too few points: the initial pose, score 0
            with timer.stage("icp"):
                poses, stage_scores = self._fit(observation, points, det, R0[:, k], t0[:, k], s0[:, k], up)
            for target, values in zip((start, final), poses, strict=True):
                for array, value in zip(target, values, strict=True):
                    array[:, k] = value
            scores[:, :, k] = stage_scores

        chosen = np.argmax(scores[-1], axis=0) if n_det else np.zeros(0, dtype=np.int64)
        trajectory = Pose.from_numpy(
            *(np.stack([first, begin, end]) for first, begin, end in zip((R0, t0, s0), start, final, strict=True))
        )
        final_scores = scores[-1, chosen, np.arange(n_det)]
        clipped = np.clip(scores, _SCORE_EPS, 1.0 - _SCORE_EPS)
        logits = np.log(clipped / (1.0 - clipped))
        syms = [self.cads[det.cad].sym for det in kept]
        return AlignmentResult.from_hypotheses(
            list(kept), init, trajectory, logits, chosen, final_scores, syms, skipped, timer.to_dict()
        )

    def align_bundle(self, bundle: SceneBundle | str | Path) -> AlignmentResult:
        """Align a scene bundle, given in memory or as its directory."""
        scene_dir = None
        if not isinstance(bundle, SceneBundle):
            scene_dir = Path(bundle)
            bundle = read_bundle(scene_dir)
        return self.align(bundle.observation, bundle.detections, scene_dir)

    def _fit(
        self,
        observation: Observation,
        points: np.ndarray,
        det: Detection,
        R0: np.ndarray,
        t0: np.ndarray,
        s0: np.ndarray,
        up: np.ndarray,
    ) -> tuple[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]], np.ndarray]:
        """ICP of one detection's points (N, 3) from its initial poses R0 (H, 3, 3), t0 (H, 3), s0 (H, 3).

        Returns ((R, t, s) at the ICP start, (R, t, s) refined), each of leading size H, and the scores
        (3, H) of the initial, start and refined poses.
        """
        config = self.config
        cad_points, cad_normals = (
            np.asarray(a, dtype=np.float64) for a in self.cads.points(det.cad, config.model_points)
        )
        extent, cad_centre = self.cads.extent(det.cad), self.cads.centre(det.cad)
        tau = config.inlier_distance
        scores = np.zeros((3, len(R0)))

        def score(model: _Model, R: np.ndarray, t: np.ndarray) -> float:
            violation = free_space_violation(model.points @ R.T + t, observation.depth, observation.camera.K, tau)
            return fit_score(points, model, R, t, tau) * (1.0 - violation)

        offset = principal_yaw_offset(points, up, R0[0] @ np.array([1.0, 0.0, 0.0]), config.min_anisotropy)
        R = rotation_about(up, offset) @ R0
        scale, centre = scale_and_centre(points, R, extent, det.category, config.percentiles)
        t = centre - np.einsum("hij,hj->hi", R, scale * cad_centre)
        start = (R.copy(), t.copy(), scale.copy())
        for h in range(len(R0)):
            scores[0, h] = score(_Model(cad_points, cad_normals, s0[h]), R0[h], t0[h])
            R_h, t_h, s_h = R[h], t[h], scale[h]
            for round_index in range(config.rounds):
                if round_index > 0:
                    # A new scale in the refined axes; the object centre stays where ICP put it.
                    centre_h = t_h + R_h @ (s_h * cad_centre)
                    s_h = scale_and_centre(points, R_h[None], extent, det.category, config.percentiles)[0][0]
                    t_h = centre_h - R_h @ (s_h * cad_centre)
                model = _Model(cad_points, cad_normals, s_h)
                if round_index == 0:
                    scores[1, h] = score(model, R_h, t_h)
                R_h, t_h = icp(points, model, R_h, t_h, s_h * cad_centre, up, config)
            scores[2, h] = score(model, R_h, t_h)
            R[h], t[h], scale[h] = R_h, t_h, s_h
        return (start, (R, t, scale)), scores
