"""The depth's smooth error, read from the room around the objects.

Predicted depth, and less so a sensor's, is off by a relative error that varies smoothly across the image
(the realistic noise level: about 4 % over wavelengths of 150 to 600 pixels), and an object's translation
inherits the error at its pixels. The room is made of planes whose orientation gravity fixes: the floor is
perpendicular to up and the walls are parallel to it, so where the depth bends them it is off, and by how
much can be read there. On the room's pixels (a valid depth, outside every detection's mask, or box when
it has none, grown by `_OBJECT_MARGIN` pixels), camera frame, metres:

- floor: normals within `_CONE_DEG` of up; its height along up the median of theirs, then of those within
  `_FLOOR_BAND` (relative) of it;
- walls: normals within `_CONE_DEG` of horizontal, grouped by azimuth (the fullest `_WALL_WINDOW_DEG`
  window, up to `_MAX_WALLS` walls), each wall's azimuth searched within `_WALL_SEARCH_DEG` for the least
  spread of its points' offsets, its pixels those within max(`_WALL_BAND`, 4 MADs) of the median offset;
- each plane pixel's ratio: its observed depth over the depth of its plane along its ray, kept when within
  `_MAX_RATIO` of 1 (a box, a rug or an undetected object on the floor is no part of it).

The ratios are spread over the image by a normalised Gaussian of `sigma_px` pixels, shrunk towards 1 where
few room pixels are near (`prior`), and clamped to `max_error`; the depth is divided by them (`room_corrected`).

What it cannot see: a per-image scale (the whole depth map times k) scales the room's planes with it, and
the plane's height and offsets absorb the error's mean over the room. On clean depth the ratios are 1 and
the depth is kept. Measured in BENCHMARKS.md ("Test-time stages: the depth's error read from the room").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from multisparc.datasets.bundle import Detection, Observation
from multisparc.inference.initialisation import box_pixel_ranges, pixel_points

_OBJECT_MARGIN = 3
_CONE_DEG = 25.0
_FLOOR_BAND = 0.1
_WALL_WINDOW_DEG = 30.0
_WALL_SEARCH_DEG = 10.0
_WALL_BAND = 0.1
_MAX_WALLS = 3
_MAX_RATIO = 0.25
# The room is read on every _STRIDE-th pixel of every _STRIDE-th row: the error is smooth over hundreds of
# pixels, and the field is read at a sixteenth of the cost, then interpolated back.
_STRIDE = 4
# Fewer plane pixels of that grid than this and a plane (or the whole room) is not read.
_MIN_PIXELS = 50


@dataclass(frozen=True)
class RoomDepthConfig:
    """sigma_px: the Gaussian (pixels) that spreads the room's ratios over the image. prior: the weight of
    a ratio of 1 against the Gaussian's normalised count of room pixels (0 to 1): where fewer are near,
    the correction fades. max_error: the largest relative correction."""

    sigma_px: float = 20.0
    prior: float = 0.001
    max_error: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_px) and self.sigma_px > 0):
            raise ValueError(f"sigma_px must be a positive number, got {self.sigma_px!r}")
        if not (math.isfinite(self.prior) and self.prior > 0):
            raise ValueError(f"prior must be a positive number, got {self.prior!r}")
        if not 0.0 <= self.max_error < 1.0:
            raise ValueError(f"max_error must lie in [0, 1), got {self.max_error!r}")


def room_corrected(
    observation: Observation, detections: Sequence[Detection], up: np.ndarray, config: RoomDepthConfig
) -> Observation:
    """The observation with its depth divided by `depth_error_field` (unknown depths kept unknown); the same
    observation when the room shows too few plane pixels or has no normals."""
    field = depth_error_field(observation, detections, up, config)
    if field is None:
        return observation
    depth = np.asarray(observation.depth)
    valid = np.isfinite(depth) & (depth > 0)
    corrected = np.where(valid, depth / np.where(valid, field, 1.0), depth).astype(depth.dtype)
    return replace(observation, depth=corrected)


def depth_error_field(
    observation: Observation, detections: Sequence[Detection], up: np.ndarray, config: RoomDepthConfig
) -> np.ndarray | None:
    """(H, W) the depth's estimated ratio to the true depth (module docstring), in [1 - max_error,
    1 + max_error]; None when the room shows fewer than `_MIN_PIXELS` plane pixels or there are no normals.
    up (3,) gravity up, camera frame."""
    if observation.normals is None:
        return None
    height, width = np.asarray(observation.depth).shape
    rows, cols = np.mgrid[0:height:_STRIDE, 0:width:_STRIDE]
    room = _room_pixels(observation.depth, detections)[rows, cols]
    ratio = room_ratios(observation, rows, cols, room, up)
    known = np.isfinite(ratio)
    if known.sum() < _MIN_PIXELS:
        return None
    sigma = config.sigma_px / _STRIDE
    excess = ndimage.gaussian_filter(np.where(known, ratio - 1.0, 0.0), sigma, mode="nearest")
    weight = ndimage.gaussian_filter(known.astype(np.float64), sigma, mode="nearest")
    field = 1.0 + np.clip(excess / (weight + config.prior), -config.max_error, config.max_error)
    at = np.mgrid[0:height, 0:width] / _STRIDE  # each pixel's place on the grid
    return ndimage.map_coordinates(field, at, order=1, mode="nearest")


def room_ratios(
    observation: Observation, rows: np.ndarray, cols: np.ndarray, room: np.ndarray, up: np.ndarray
) -> np.ndarray:
    """(h, w) observed depth over the depth of its floor or wall plane at the pixels (rows, cols) (h, w) int
    whose room (h, w) bool is set and that lie on one, NaN elsewhere (module docstring)."""
    depth = np.nan_to_num(np.asarray(observation.depth, dtype=np.float64)[rows, cols], nan=0.0)
    normals = np.nan_to_num(np.asarray(observation.normals, dtype=np.float64)[rows, cols])
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    K = np.asarray(observation.camera.K, dtype=np.float64)
    rays = pixel_points(np.ones(rows.size), rows.ravel(), cols.ravel(), K).reshape(*rows.shape, 3)  # z = 1
    points = rays * depth[..., None]
    upness = normals @ up
    ratio = np.full(depth.shape, np.nan)
    cone = math.cos(math.radians(_CONE_DEG))
    _floor_ratios(ratio, depth, rays, points @ up, room & (upness > cone), up)
    walls = room & (np.abs(upness) < math.sin(math.radians(_CONE_DEG)))
    if walls.sum() >= _MIN_PIXELS:
        _wall_ratios(ratio, depth, rays, points, normals - upness[..., None] * up, walls, up)
    ratio[~(np.abs(ratio - 1.0) < _MAX_RATIO)] = np.nan
    return ratio


def _room_pixels(depth: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """(H, W) bool: valid depth outside every detection's mask (its box when it has none), grown by
    `_OBJECT_MARGIN` pixels."""
    depth = np.asarray(depth)
    objects = np.zeros(depth.shape, dtype=bool)
    for det in detections:
        if det.mask is not None:
            objects |= np.asarray(det.mask, dtype=bool)
        else:
            objects[box_pixel_ranges(det.bbox)] = True
    return np.isfinite(depth) & (depth > 0) & ~ndimage.binary_dilation(objects, iterations=_OBJECT_MARGIN)


def _floor_ratios(
    ratio: np.ndarray, depth: np.ndarray, rays: np.ndarray, level: np.ndarray, floor: np.ndarray, up: np.ndarray
) -> None:
    """Write the floor pixels' ratios into ratio (h, w): the floor is the plane `p . up = h`, h the
    median level (p . up, metres) of the up-facing room pixels `floor` (h, w) bool, then of those within
    `_FLOOR_BAND` of it."""
    if floor.sum() < _MIN_PIXELS:
        return
    first = np.median(level[floor])
    on = floor & (np.abs(level - first) < _FLOOR_BAND * abs(first))
    if on.sum() < _MIN_PIXELS:
        return
    floor_level = np.median(level[on])
    # Along the ray r (z = 1), the plane's depth is h / (r . up).
    ratio[on] = depth[on] * (rays[on] @ up) / floor_level


def _wall_ratios(
    ratio: np.ndarray,
    depth: np.ndarray,
    rays: np.ndarray,
    points: np.ndarray,
    horizontal: np.ndarray,
    walls: np.ndarray,
    up: np.ndarray,
) -> None:
    """Write the wall pixels' ratios into ratio (h, w) (module docstring); horizontal (h, w, 3) the normals'
    parts perpendicular to up, walls (h, w) bool the room pixels whose normals are about horizontal."""
    across = np.cross(up, [0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.cross(up, [1.0, 0.0, 0.0])
    across /= np.linalg.norm(across)
    along = np.cross(up, across)
    azimuth = np.arctan2(horizontal @ along, horizontal @ across)
    remaining = walls.copy()
    half_window = math.radians(_WALL_WINDOW_DEG) / 2
    for _ in range(_MAX_WALLS):
        if remaining.sum() < _MIN_PIXELS:
            return
        centre = _fullest_window(azimuth[remaining], half_window)
        near = remaining & (np.abs(np.angle(np.exp(1j * (azimuth - centre)))) < half_window)
        remaining &= ~near
        sample = points[near]
        spread, normal, offset = min(
            (_offset_spread(sample, math.cos(centre + turn) * across + math.sin(centre + turn) * along)
             for turn in np.radians(np.arange(-_WALL_SEARCH_DEG, _WALL_SEARCH_DEG + 0.5, 1.0))),
            key=lambda found: found[0],
        )
        band = max(_WALL_BAND, 4.0 * spread)
        on = near & (np.abs(points @ normal - offset) < band)
        if on.sum() < _MIN_PIXELS:
            continue
        # The searched azimuth is on a 1-deg grid: the plane of least squares through its pixels is exact.
        normal, offset = _vertical_plane(points[on], up, normal)
        on = near & (np.abs(points @ normal - offset) < band)
        if on.sum() >= _MIN_PIXELS and abs(offset) > 1e-6:
            ratio[on] = depth[on] * (rays[on] @ normal) / offset


def _fullest_window(azimuth: np.ndarray, half_window: float) -> float:
    """The centre (radians) of the azimuth window of width 2 half_window holding most of `azimuth` (N,),
    read on a 5-deg histogram that wraps around."""
    bins = 72
    counts, edges = np.histogram(azimuth, bins=bins, range=(-math.pi, math.pi))
    reach = max(1, round(half_window / (2 * math.pi / bins)))
    wrapped = np.concatenate([counts[-reach:], counts, counts[:reach]])
    window = np.convolve(wrapped, np.ones(2 * reach + 1), mode="valid")
    best = int(np.argmax(window))
    return float((edges[best] + edges[best + 1]) / 2)


def _vertical_plane(points: np.ndarray, up: np.ndarray, guess: np.ndarray) -> tuple[np.ndarray, float]:
    """(normal (3,), offset) of the vertical plane `p . normal = offset` of least squares through points
    (N, 3): normal perpendicular to up, on the side of guess (3,)."""
    flat = points - np.outer(points @ up, up)
    centred = flat - flat.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    # The smallest eigenvector of the flattened points is up itself (no spread along it): take the next.
    candidates = vectors[:, :2]
    normal = candidates[:, int(np.argmax(np.abs(candidates.T @ guess)))]
    normal = normal - (normal @ up) * up
    normal /= np.linalg.norm(normal)
    if normal @ guess < 0:
        normal = -normal
    return normal, float(np.median(points @ normal))


def _offset_spread(points: np.ndarray, normal: np.ndarray) -> tuple[float, np.ndarray, float]:
    """(median absolute deviation, normal, median) of the offsets `points . normal` of points (N, 3)."""
    offsets = points @ normal
    median = float(np.median(offsets))
    return float(np.median(np.abs(offsets - median))), normal, median
