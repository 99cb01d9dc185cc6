"""Initial pose hypotheses at test time (paper Sec. 3.3, Fig. 4a).

Every detection starts from `n_hypotheses` poses (4 in the paper) that differ only in their azimuth,
k * 360 / n_hypotheses degrees about the gravity-up axis, and share the object centre and the scale:

- Rotation: the CAD stands upright (its +Y along gravity up) and faces the camera's forward axis at
  azimuth 0 (CAD +Z towards the camera), seen with the camera's pitch and roll
  (`multisparc.geometry.yaw_pitch_roll_to_matrix`). Gravity up comes, in this order, from
  `camera.json` "up"; from the normal map (`up_from_normals`); from a configured default pitch.
- Centre: on the ray through the centre of the (clipped) box. The depth map gives the visible front
  surface there: the median of the valid depths (> 0) of the detection's mask inside the box, else of
  the whole box, else `fallback_depth`. The object's centre lies behind that surface, so it is placed
  half the class's typical depth (its size along CAD z) further along the ray.
- Scale: isotropic, the class's typical size over the CAD's extent (`multisparc.categories.typical_scale`).

The pose places the CAD's bounding-box centre (not its file origin) at the centre found above:
`t = centre - R @ (s * c_cad)` with c_cad the CAD's bounding-box centre, so `X_cam = t + R @ (s * X_cad)`
holds with X_cad the CAD file's own coordinates. For CADs whose origin is not their box centre, t
therefore differs between the hypotheses while the object centre does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from multisparc.cad import CadIndex
from multisparc.categories import category_info, typical_scale
from multisparc.datasets.bundle import Detection, Observation
from multisparc.geometry import Pose, pitch_roll_from_up, yaw_pitch_roll_to_matrix

UpSource = Literal["camera", "normals", "default"]
DepthSource = Literal["mask", "depth mask", "box", "fallback"]

# Cones (degrees) of the mean-shift that pulls the up estimate onto the floor normals: wide enough to
# catch a floor seen by a camera pitched 40 deg off the prior, then narrowing to the dominant cluster.
_UP_CONES_DEG = (45.0, 20.0, 10.0)
# The up estimate reads normals on a regular pixel grid of at most this many points: plenty for a mean
# direction, and it keeps the estimate at about a millisecond for any image size.
_MAX_UP_SAMPLES = 20_000
# A normal vector shorter than this is the bundle's "unknown" marker (zero vector).
_MIN_NORMAL_LENGTH = 0.5


@dataclass(frozen=True)
class InitialisationConfig:
    """How initial poses are made (module docstring).

    n_hypotheses: azimuths per detection, evenly spaced over 360 deg.
    fallback_depth: metres, the visible surface's z-depth when the box holds no valid depth.
    default_pitch: radians (positive = camera looking down), the camera pitch assumed (with roll 0)
        when neither camera.json nor the normal map tells gravity; also the prior of `up_from_normals`.
    min_floor_fraction: the fraction of valid normals that must agree with an up estimate from the
        normal map for it to be trusted.
    """

    n_hypotheses: int = 4
    fallback_depth: float = 3.0
    default_pitch: float = 0.0
    min_floor_fraction: float = 0.02

    def __post_init__(self) -> None:
        if isinstance(self.n_hypotheses, bool) or not isinstance(self.n_hypotheses, int) or self.n_hypotheses < 1:
            raise ValueError(f"n_hypotheses must be a positive integer, got {self.n_hypotheses!r}")
        if not (math.isfinite(self.fallback_depth) and self.fallback_depth > 0):
            raise ValueError(f"fallback_depth must be a positive number of metres, got {self.fallback_depth!r}")
        if not abs(self.default_pitch) < math.pi / 2:
            raise ValueError(f"default_pitch must lie in (-pi/2, pi/2) radians, got {self.default_pitch!r}")
        if not 0.0 < self.min_floor_fraction <= 1.0:
            raise ValueError(f"min_floor_fraction must lie in (0, 1], got {self.min_floor_fraction!r}")


@dataclass
class GravityEstimate:
    """Gravity up (3,) unit vector in the camera frame and where it came from."""

    up: np.ndarray
    source: UpSource


@dataclass
class Initialisation:
    """Initial poses of every detection under every hypothesis.

    poses: batch shape (n_hypotheses, K) float64, hypothesis h turned by h * 360 / n_hypotheses deg about
    gravity up. surface_depth: (K,) z-depth in metres of the visible surface used for each detection,
    depth_source: where each came from. gravity: the up axis used.
    """

    poses: Pose
    surface_depth: np.ndarray
    depth_source: list[DepthSource]
    gravity: GravityEstimate


def up_of_pitch(pitch: float) -> np.ndarray:
    """Gravity up (3,) in the camera frame of a camera with this pitch (radians, + = looking down), roll 0."""
    return np.array([0.0, -math.cos(pitch), -math.sin(pitch)])


def up_from_normals(normals: np.ndarray, prior_up: np.ndarray, min_fraction: float) -> np.ndarray | None:
    """Gravity up (3,) camera frame estimated as the dominant direction of floor-like normals, or None.

    normals (H, W, 3) camera frame facing the camera, zero = unknown. Floors and the tops of tables, beds
    and cabinets face the camera and point up, so they form the one cluster of normals near the up
    direction (walls are perpendicular to it, ceilings opposite). Starting from `prior_up`, the estimate
    moves to the mean of the normals within a cone around it, with the cone narrowing (45, 20, 10 deg).
    None when fewer than `min_fraction` of the valid normals lie in a cone (no floor in view). The
    normals are read on a regular grid of at most _MAX_UP_SAMPLES pixels.
    """
    normals = np.asarray(normals)
    step = max(1, math.ceil(math.sqrt(normals.shape[0] * normals.shape[1] / _MAX_UP_SAMPLES)))
    flat = normals[::step, ::step].reshape(-1, 3).astype(np.float64)
    flat = flat[np.linalg.norm(flat, axis=1) > _MIN_NORMAL_LENGTH]
    min_support = max(1, math.ceil(min_fraction * len(flat)))
    up = np.asarray(prior_up, dtype=np.float64) / np.linalg.norm(prior_up)
    for cone in _UP_CONES_DEG:
        near = flat[flat @ up > math.cos(math.radians(cone))]
        if len(near) < min_support:
            return None
        up = near.mean(axis=0)
        up /= np.linalg.norm(up)
    return up


def gravity_up(observation: Observation, config: InitialisationConfig) -> GravityEstimate:
    """Gravity up of an observation: camera.json "up", else estimated from the normals, else the default pitch."""
    if observation.camera.up is not None:
        up = np.asarray(observation.camera.up, dtype=np.float64)
        return GravityEstimate(up / np.linalg.norm(up), "camera")
    prior = up_of_pitch(config.default_pitch)
    if observation.normals is not None:
        estimate = up_from_normals(observation.normals, prior, config.min_floor_fraction)
        if estimate is not None:
            return GravityEstimate(estimate, "normals")
    return GravityEstimate(prior, "default")


def box_pixel_ranges(box: np.ndarray) -> tuple[slice, slice]:
    """(rows, cols) slices of the integer pixels inside box [x1, y1, x2, y2] (clipped to the image);
    a box narrower than a pixel keeps its nearest pixel."""
    x1, y1, x2, y2 = (float(v) for v in box)

    def span(low: float, high: float) -> slice:
        first, last = math.ceil(low), math.floor(high)
        if first > last:
            first = last = math.floor(0.5 * (low + high) + 0.5)
        return slice(first, last + 1)

    return span(y1, y2), span(x1, x2)


def pixel_points(z: np.ndarray, rows: np.ndarray, cols: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (N, 3) float64 of depths z (N,) metres at image pixels (rows, cols) (N,) of a
    camera K (3, 3): the numpy form of `geometry.backproject` for the depth fits' point sets."""
    uv1 = np.stack([cols, rows, np.ones_like(z)], axis=1).astype(np.float64)
    return z[:, None] * (uv1 @ np.linalg.inv(K).T)


def surface_depth(depth: np.ndarray, box: np.ndarray, mask: np.ndarray | None) -> tuple[float | None, DepthSource]:
    """Median z-depth (metres) of the visible surface in box (4,) of depth (H, W) (0 or NaN = unknown).

    Uses the pixels of mask (H, W) bool inside the box when any of them has a valid depth, else every
    pixel of the box; returns (None, "fallback") when none is valid.
    """
    rows, cols = box_pixel_ranges(box)
    region = np.asarray(depth[rows, cols], dtype=np.float64)
    valid = np.isfinite(region) & (region > 0)
    if mask is not None:
        in_mask = valid & np.asarray(mask[rows, cols], dtype=bool)
        if in_mask.any():
            return float(np.median(region[in_mask])), "mask"
    if valid.any():
        return float(np.median(region[valid])), "box"
    return None, "fallback"


def initial_poses(
    observation: Observation, detections: Sequence[Detection], cads: CadIndex, config: InitialisationConfig
) -> Initialisation:
    """Initial poses (n_hypotheses, K) of detections whose boxes lie inside the image (clip them first).

    Needs the observation's depth map; every detection's CAD must be in `cads`.
    """
    if observation.depth is None:
        raise ValueError("initial poses need the observation's depth map")
    gravity = gravity_up(observation, config)
    pitch, roll = pitch_roll_from_up(torch.from_numpy(gravity.up))
    yaws = torch.arange(config.n_hypotheses, dtype=torch.float64) * (2 * math.pi / config.n_hypotheses)
    rotations = yaw_pitch_roll_to_matrix(yaws, pitch, roll)  # (H, 3, 3)
    K_inv = np.linalg.inv(observation.camera.K)

    centres, scales, offsets, depths, sources = [], [], [], [], []
    for det in detections:
        depth, source = surface_depth(observation.depth, det.bbox, det.mask)
        depth = config.fallback_depth if depth is None else depth
        x1, y1, x2, y2 = det.bbox
        ray = K_inv @ np.array([0.5 * (x1 + x2), 0.5 * (y1 + y2), 1.0])  # z = 1
        half_depth = 0.5 * category_info(det.category).typical_size[2]
        centres.append(ray * depth + half_depth * ray / np.linalg.norm(ray))
        scale = typical_scale(det.category, cads.extent(det.cad))
        scales.append(scale)
        offsets.append(scale * cads.centre(det.cad))
        depths.append(depth)
        sources.append(source)

    n_hyp, n_det = config.n_hypotheses, len(detections)
    centre = torch.tensor(np.reshape(centres, (n_det, 3)), dtype=torch.float64)
    scale = torch.tensor(np.reshape(scales, (n_det, 3)), dtype=torch.float64)
    offset = torch.tensor(np.reshape(offsets, (n_det, 3)), dtype=torch.float64)
    R = rotations[:, None].expand(n_hyp, n_det, 3, 3).clone()
    t = centre - (R @ offset.unsqueeze(-1)).squeeze(-1)
    poses = Pose(R, t, scale.expand(n_hyp, n_det, 3).clone())
    return Initialisation(poses, np.asarray(depths, dtype=np.float64), sources, gravity)
