"""Fitting a CAD model to the observed depth of its detection: the geometry shared by the depth-only ICP
baseline (`multisparc.baselines.icp`) and the depth-fit stage of the full pipeline (`inference.pipeline`).

All in the camera frame, metres. `detection_points` back-projects a detection's depth; `principal_yaw_offset`
and `scale_and_centre` read a start from those points; `SurfaceSamples` holds a scaled CAD's surface samples
with a kd tree; `icp` refines the yaw about gravity up and the translation with the scale held (4 degrees of
freedom). The ICP is written here rather than taken from trimesh (`trimesh.registration.icp`: 6-DoF
point-to-point) or Open3D (6-DoF, and a heavy dependency): neither constrains the rotation to gravity, drops
back-side pairs, or mixes point-to-plane with point-to-point terms. `IcpConfig` holds every setting
(its docstring says what each does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_erosion
from scipy.spatial import cKDTree

from multisparc.cad.nearest import NearestSampleGrid
from multisparc.categories import category_info, scale_range
from multisparc.datasets.bundle import Detection, Observation
from multisparc.inference.initialisation import box_pixel_ranges, pixel_points


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
    lookup: how the nearest CAD sample is found, "kdtree" (exact, a tree per scale) or "grid" (a table per
    model, approximate and faster: `SurfaceSamples`). erode_pixels: erosion of the mask before its pixels
    are read. percentiles: (low, high) percentiles of the points along each object axis that bound their
    robust extent. back_faces: ICP pairs points with back-facing CAD samples too, and the ICP baseline's
    score counts them by their plane distance (`verification.fit_scores`, back_faces): with depth noise of
    a thin part's thickness, points behind its front face find its back face nearest, and dropping them
    pulls the fit towards the camera.
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
    lookup: str = "kdtree"
    erode_pixels: int = 0
    percentiles: tuple[float, float] = (2.0, 98.0)
    back_faces: bool = False

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
        if self.lookup not in ("kdtree", "grid"):
            raise ValueError(f"IcpConfig.lookup must be 'kdtree' or 'grid', got {self.lookup!r}")
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
    points = pixel_points(depth[j, i], j + rows.start, i + cols.start, observation.camera.K)
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
    per_axis: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Scales (H, 3) and object centres (H, 3) camera frame of hypotheses with rotations R (H, 3, 3), from
    points (N, 3) camera frame; cad_extent (3,) the CAD's bounding-box size.

    The points' robust extents along the object axes over the CAD's give one ratio per axis; a single view
    sees the axis of smallest ratio only in part. Isotropic (default): the mean of the two largest ratios.
    per_axis: the two largest ratios each for its own axis and their mean for the third. Clamped per axis
    to the class's size range; the centre is the middle of the points' box pushed away from the camera
    along each axis by half the extent the points do not cover."""
    mean = points.mean(axis=0)
    local = np.einsum("nc,hca->hna", points - mean, R)  # coordinates along each hypothesis's object axes
    low, high = np.percentile(local, percentiles, axis=1)  # (H, 3) each
    observed = high - low
    ratio = observed / cad_extent
    iso = np.sort(ratio, axis=1)[:, -2:].mean(axis=1)
    smallest, largest = scale_range(category, cad_extent)
    if per_axis:
        least_seen = np.argmin(ratio, axis=1)
        ratio[np.arange(len(ratio)), least_seen] = iso
        scale = np.clip(ratio, smallest, largest)
    else:
        scale = np.clip(iso[:, None], smallest, largest)
    axes = R.transpose(0, 2, 1)  # axes[h, a] = object axis a in the camera frame
    centre = mean + np.einsum("hac,ha->hc", axes, 0.5 * (low + high))
    view = centre / np.linalg.norm(centre, axis=1, keepdims=True)
    away = np.sign(np.einsum("hac,hc->ha", axes, view))
    deficit = np.maximum(scale * cad_extent - observed, 0.0)
    centre = centre + np.einsum("hac,ha->hc", axes, 0.5 * deficit * away)
    return scale, centre


class SurfaceSamples:
    """A CAD's surface samples scaled by s (CAD frame after the scale, metres) and how their nearest is
    found: poses move observed points into this frame, `R^T (p - t)`.

    lookup None: a kd tree of the scaled samples (exact, built per scale). A `NearestSampleGrid` of the
    unscaled samples (`CadIndex.nearest_samples`, built once per model): points are divided by the scale and
    looked up (approximate: the nearest in the unscaled frame, within a cell; the distances returned are
    those to the sample found, in the scaled frame).
    """

    def __init__(
        self, points: np.ndarray, normals: np.ndarray, scale: np.ndarray, lookup: NearestSampleGrid | None = None
    ) -> None:
        self.scale = np.asarray(scale, dtype=np.float64)
        self.points = points * self.scale
        normals = normals / self.scale  # the inverse transpose of the scaling keeps normals normal
        self.normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
        self.lookup = lookup
        # A tree per scale and few queries each: the unbalanced, uncompacted tree builds in about half
        # the time and answers these queries as fast.
        self.tree = cKDTree(self.points, balanced_tree=False, compact_nodes=False) if lookup is None else None

    def nearest_index(self, local: np.ndarray, bound: float = np.inf) -> np.ndarray:
        """Index (N,) of the nearest sample to each point (N, 3) of the scaled CAD frame. With a kd tree,
        points with no sample within `bound` get index M (one past the last sample): the bound prunes
        the tree's search, and the callers drop pairs that far anyway."""
        if self.lookup is not None:
            return self.lookup.query(local / self.scale, self.scale)
        # The tree keeps only distances below its bound; the slack keeps a pair at exactly `bound`.
        return self.tree.query(local, distance_upper_bound=bound * (1.0 + 1e-9))[1]

    def pairs(
        self, observed: np.ndarray, R: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For observed (N, 3) camera frame under pose (R, t): distances (N,) to the nearest model points,
        those points (N, 3) and normals (N, 3) in the camera frame, and whether each faces the camera (N,)."""
        distance, points, normals, facing = surface_pairs([self], observed, R[None], t[None])
        return distance[0], points[0], normals[0], facing[0]


def surface_pairs(
    models: Sequence[SurfaceSamples], observed: np.ndarray, R: np.ndarray, t: np.ndarray, bound: float = np.inf
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`SurfaceSamples.pairs` of H models (one CAD, H scales) under poses R (H, 3, 3), t (H, 3) at once:
    distances (H, N), nearest points and normals (H, N, 3) camera frame, facing (H, N) bool. Models that
    share one lookup grid are looked up in a single query.

    bound: the largest pair distance the caller keeps, which prunes a kd tree's search; a point with no
    sample within the bound gets distance inf and, as its point and normal, the first sample's (finite
    values the callers' masks drop)."""
    local = (observed[None] - t[:, None]) @ R  # each model's scaled CAD frame
    lookup = models[0].lookup
    if lookup is not None and all(model.lookup is lookup for model in models):
        scale = np.stack([np.broadcast_to(model.scale, (3,)) for model in models])
        per_point = np.repeat(scale, local.shape[1], axis=0)  # (H * N, 3)
        index = lookup.query((local / scale[:, None]).reshape(-1, 3), per_point).reshape(local.shape[:2])
    else:
        index = np.stack([model.nearest_index(x, bound) for model, x in zip(models, local, strict=True)])
    beyond = index >= np.array([len(model.points) for model in models])[:, None]
    index[beyond] = 0
    nearest = np.stack([model.points[i] for model, i in zip(models, index, strict=True)])
    normals = np.stack([model.normals[i] for model, i in zip(models, index, strict=True)])
    offset = local - nearest
    distance = np.where(beyond, np.inf, np.sqrt(dot(offset, offset)))
    rotate = R.transpose(0, 2, 1)
    normals = normals @ rotate
    return distance, nearest @ rotate + t[:, None], normals, dot(normals, observed) < 0


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products over the last axis of 3-vectors (..., 3), broadcast (faster than einsum or a sum over
    a last axis of length 3 for the small arrays of a fit)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def icp(
    observed: np.ndarray,
    models: Sequence[SurfaceSamples],
    R: np.ndarray,
    t: np.ndarray,
    centre_offset: np.ndarray,
    up: np.ndarray,
    config: IcpConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine the yaw about `up` (3,) and the translation of H poses (R (H, 3, 3), t (H, 3)) so that
    each model of `models` (H, one CAD at H scales) fits observed (N, 3) camera frame (module docstring,
    step 4), all at once; centre_offset (H, 3) is s * the CAD's box centre, the point the yaw turns about.
    A pose stops when its step falls below the tolerance or it keeps fewer than `min_points` pairs.
    Returns the refined (R (H, 3, 3), t (H, 3))."""
    R, t = np.array(R, dtype=np.float64), np.array(t, dtype=np.float64)
    w = config.point_to_point_weight
    final = 2.0 * config.inlier_distance
    up_cross = np.cross(up, np.eye(3))  # row i: up x e_i, so d @ up_cross = up x d
    active = np.ones(len(R), dtype=bool)
    for iteration in range(config.iterations):
        moving = np.flatnonzero(active)
        if not len(moving):
            break
        fraction = iteration / max(config.iterations - 1, 1)
        trim = config.max_distance * (final / config.max_distance) ** fraction
        distance, q, n, facing = surface_pairs([models[h] for h in moving], observed, R[moving], t[moving], trim)
        paired = facing | config.back_faces
        keep = (paired & (distance <= trim)).astype(np.float64)  # (A, N) the pairs each pose uses
        enough = keep.sum(axis=1) >= config.min_points
        active[moving[~enough]] = False
        moving, q, n, keep = moving[enough], q[enough], n[enough], keep[enough]
        if not len(moving):
            break
        centre = t[moving] + (R[moving] @ centre_offset[moving][..., None])[..., 0]
        arm = (q - centre[:, None]) @ up_cross  # d q / d yaw
        gap = q - observed[None]
        # Rows of the Jacobian in (yaw, tx, ty, tz): point-to-plane n . dq, point-to-point dq.
        plane = np.concatenate([dot(n, arm)[..., None], n], axis=2) * keep[..., None]
        plane_t = plane.transpose(0, 2, 1)
        A = plane_t @ plane
        b = (plane_t @ dot(n, gap)[..., None])[..., 0]
        if w > 0:  # the point-to-point rows [arm, I] summed in closed form
            arm_kept, gap_kept = arm * keep[..., None], gap * keep[..., None]
            A[:, 0, 0] += w * dot(arm_kept, arm).sum(axis=1)
            A[:, 0, 1:] += w * arm_kept.sum(axis=1)
            A[:, 1:, 0] += w * arm_kept.sum(axis=1)
            A[:, 1:, 1:] += w * keep.sum(axis=1)[:, None, None] * np.eye(3)
            b[:, 0] += w * dot(arm_kept, gap).sum(axis=1)
            b[:, 1:] += w * gap_kept.sum(axis=1)
        step = -np.linalg.solve(A + config.damping * np.eye(4), b[..., None])[..., 0]
        turn = rotation_about(up, step[:, 0])
        R[moving] = turn @ R[moving]
        t[moving] = centre + (turn @ (t[moving] - centre)[..., None])[..., 0] + step[:, 1:]
        still = (np.abs(step[:, 0]) < config.tolerance) & (np.linalg.norm(step[:, 1:], axis=1) < config.tolerance)
        active[moving[still]] = False
    return R, t


@dataclass(frozen=True)
class DepthOnlyFits:
    """The depth-only fits of one detection's H hypotheses (`depth_only_fits`).

    start, fitted: (R (H, 3, 3), t (H, 3), s (H, 3)) camera frame at the ICP start and after it (the start
    where a hypothesis was not fitted); models: (H,) each fitted hypothesis's `SurfaceSamples` at its
    fitted scale (None where not fitted), so that scoring the fits builds no second kd tree.
    """

    start: tuple[np.ndarray, np.ndarray, np.ndarray]
    fitted: tuple[np.ndarray, np.ndarray, np.ndarray]
    models: list[SurfaceSamples | None]


def depth_only_fits(
    points: np.ndarray,
    cad_points: np.ndarray,
    cad_normals: np.ndarray,
    cad_extent: np.ndarray,
    cad_centre: np.ndarray,
    category: str,
    R0: np.ndarray,
    up: np.ndarray,
    config: IcpConfig,
    only: Sequence[int] | None = None,
    lookup: NearestSampleGrid | None = None,
) -> DepthOnlyFits:
    """The depth-only fit of one detection from initial rotations R0 (H, 3, 3) (the n azimuths about `up`),
    with nothing learned: turned together onto the points' principal horizontal direction, scale and centre
    from the points' extents (`scale_and_centre`), then per hypothesis `config.rounds` of (new scale in the
    refined axes, the object centre kept; `icp`).

    points (N, 3) camera frame; cad_points, cad_normals (M, 3) CAD-frame surface samples; cad_extent and
    cad_centre (3,) the CAD's bounding box; only: the hypotheses to fit (default all; the others keep their
    start); lookup: the CAD's `NearestSampleGrid` (`SurfaceSamples`; None: kd trees). Returns the start
    (R (H, 3, 3), t (H, 3), s (H, 3)) and the fits.
    """
    offset = principal_yaw_offset(points, up, R0[0] @ np.array([1.0, 0.0, 0.0]), config.min_anisotropy)
    R = rotation_about(up, offset) @ R0
    scale, centre = scale_and_centre(points, R, cad_extent, category, config.percentiles)
    t = centre - np.einsum("hij,hj->hi", R, scale * cad_centre)
    start = (R.copy(), t.copy(), scale.copy())
    fit = np.arange(len(R0)) if only is None else np.asarray(only, dtype=np.int64)
    models: list[SurfaceSamples | None] = [None] * len(R0)
    if not len(fit):
        return DepthOnlyFits(start, (R, t, scale), models)
    for round_index in range(config.rounds):
        if round_index > 0:
            # A new scale in the refined axes; the object centres stay where ICP put them.
            centre = t[fit] + np.einsum("hij,hj->hi", R[fit], scale[fit] * cad_centre)
            scale[fit] = scale_and_centre(points, R[fit], cad_extent, category, config.percentiles)[0]
            t[fit] = centre - np.einsum("hij,hj->hi", R[fit], scale[fit] * cad_centre)
        fitted = [SurfaceSamples(cad_points, cad_normals, scale[h], lookup) for h in fit]
        R[fit], t[fit] = icp(points, fitted, R[fit], t[fit], scale[fit] * cad_centre, up, config)
    for h, model in zip(fit, fitted, strict=True):
        models[h] = model
    return DepthOnlyFits(start, (R, t, scale), models)
