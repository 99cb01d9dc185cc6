"""A mask from the depth for a detection that comes with a box only.

Inside a box without a mask, most pixels may be background: the wall or the room behind, the floor in
front of and under the object. This keeps the pixels of the box that are likely the object's, camera
frame, metres:

- depth window: the valid depths of the box in 5 cm bins, counted over `_FRONT_SMOOTH_BINS` bins (a
  surface slanted away from the camera, a bed's top at a grazing angle, spreads over many bins); the nearest
  bin holding at least `_MODE_SHARE` of the fullest one is the object's front; pixels from `_FRONT_MARGIN`
  before it to the class's typical horizontal diagonal behind it are kept (a wall farther behind the object
  falls out);
- other detections: the front is read from the pixels of the box outside the image's other boxes when
  they are at least `_OWN_SHARE` of its valid pixels. An object in front of this one, reaching into its
  box, is another detection, and its pixels there would otherwise be taken for this object's front (the
  window then drops them, since they lie before the front). A box lying almost wholly inside another's (a
  sofa seen above a near display that hides most of it) has too few such pixels: its front is then read
  from the pixels no other detection's mask claims (`with_depth_masks` reads the others' masks first);
- floor: when the lowest kept pixels face up (normal within `_FLOOR_CONE_DEG` of gravity up), the
  up-facing pixels within `_FLOOR_BAND` of them are dropped (a table top or a seat faces up too, but it
  is not the lowest surface in its box);
- wall: a wall within that reach (an object standing against it) is a vertical plane among the kept pixels
  (normals within `_WALL_NORMAL_DEG` of one another and points within `_WALL_DISTANCE` of it) that holds at
  least `_WALL_SHARE` of them, has at least `_WALL_BEHIND` of the others `_WALL_GAP` or more in front of
  it, and goes on outside the box where its pixels meet the box's left, right or top edge (half of the pixels
  `_WALL_PROBE` pixels outside on the plane): its pixels are dropped. A chair's back or a sofa's has the seat
  in front, but ends at the box; a cabinet's front has nothing in front of it.

The result feeds the network's mask channel and the observed points of the test-time stages, as a
detector's mask would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from multisparc.categories import category_info
from multisparc.datasets.bundle import Detection, Observation
from multisparc.inference.initialisation import box_pixel_ranges, pixel_points

_BIN = 0.05
_MODE_SHARE = 0.25
_FRONT_MARGIN = 0.1
_FLOOR_CONE_DEG = 20.0
_FLOOR_BAND = 0.05
_OWN_SHARE = 0.2
# Fewer kept pixels than this share of the box's valid ones and the box itself is returned.
_MIN_KEPT_SHARE = 0.05
_FRONT_SMOOTH_BINS = 5
_WALL_NORMAL_DEG = 20.0
_WALL_DISTANCE = 0.02
# A wall behind a bed or a sofa often shows only in a strip above it: 2 % of the kept pixels suffice (the
# other conditions tell it from the object's own faces; the boxes sets' rows in BENCHMARKS.md use it).
_WALL_SHARE = 0.02
_WALL_BEHIND = 0.7
_WALL_GAP = 0.05
_WALL_PROBE = 4
_WALL_TRIES = 40


def depth_mask(
    observation: Observation,
    detection: Detection,
    up: np.ndarray,
    others: Sequence[Detection] = (),
    claimed: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) bool mask of the detection's likely pixels (module docstring); the box's valid pixels when
    the depth tells nothing. up (3,) gravity in the camera frame; others: the image's other detections;
    claimed: (H, W) bool, the pixels of the other detections' masks, read when the box has too few pixels
    outside the other boxes. Needs the observation's depth."""
    rows, cols, region, valid = _box_depths(observation.depth, detection)
    mask = np.zeros(observation.depth.shape, dtype=bool)
    if not valid.any():
        mask[rows, cols] = True
        return mask
    own = valid & ~_inside_boxes(others, rows, cols, region.shape)
    if own.sum() < _OWN_SHARE * valid.sum() and claimed is not None:
        own = valid & ~claimed[rows, cols]
    values = region[own] if own.sum() >= _OWN_SHARE * valid.sum() else region[valid]
    edges = np.arange(values.min(), values.max() + 2 * _BIN, _BIN)
    counts, _ = np.histogram(values, bins=edges)
    counts = np.convolve(counts, np.ones(_FRONT_SMOOTH_BINS), mode="same")
    front = edges[np.flatnonzero(counts >= _MODE_SHARE * counts.max())[0]]
    size = category_info(detection.category).typical_size
    reach = math.hypot(size[0], size[2])
    keep = valid & (region >= front - _FRONT_MARGIN) & (region <= front + _BIN + reach)
    if observation.normals is not None:
        j, i = np.nonzero(keep)
        points = pixel_points(region[j, i], j + rows.start, i + cols.start, observation.camera.K)
        normals = np.asarray(observation.normals[rows, cols], dtype=np.float64)[j, i]
        upward = normals @ up > math.cos(math.radians(_FLOOR_CONE_DEG))
        level = points @ up
        # Up-facing pixels at the bottom of what is kept are floor; a table top is up-facing, but higher.
        if upward.any() and level[upward].min() <= level.min() + _FLOOR_BAND:
            floor = upward & (level <= level[upward].min() + _FLOOR_BAND)
            keep[j[floor], i[floor]] = False
        wall = _wall(observation, points, normals, j, i, rows, cols, up) & keep[j, i]
        keep[j[wall], i[wall]] = False
    if keep.sum() < _MIN_KEPT_SHARE * valid.sum():
        keep = valid
    mask[rows, cols] = keep
    return mask


def with_depth_masks(observation: Observation, detections: Sequence[Detection], up: np.ndarray) -> list[Detection]:
    """The detections, each without a mask given one read from the depth (`depth_mask`, the others of the
    image as its `others`); up (3,) gravity in the camera frame.

    Two passes: a box with too few pixels outside the other boxes has its mask read again with the pixels of
    the others' masks of the first pass (given or read) as `claimed`."""
    first = [
        det.mask
        if det.mask is not None
        else depth_mask(observation, det, up, [other for other in detections if other is not det])
        for det in detections
    ]
    masked = []
    for k, det in enumerate(detections):
        others = [other for other in detections if other is not det]
        mask = first[k]
        if det.mask is None and others and not _enough_own(observation.depth, det, others):
            claimed = np.logical_or.reduce([other_mask for index, other_mask in enumerate(first) if index != k])
            mask = depth_mask(observation, det, up, others, claimed)
        masked.append(det if det.mask is not None else replace(det, mask=mask))
    return masked


def _enough_own(depth: np.ndarray, detection: Detection, others: Sequence[Detection]) -> bool:
    """Whether at least `_OWN_SHARE` of the box's valid pixels lie outside the other detections' boxes."""
    rows, cols, region, valid = _box_depths(depth, detection)
    own = valid & ~_inside_boxes(others, rows, cols, region.shape)
    return bool(own.sum() >= _OWN_SHARE * valid.sum())


def _box_depths(depth: np.ndarray, detection: Detection) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """The box's pixel rows and columns, its depths (h, w) float64 metres and which are valid (h, w) bool."""
    rows, cols = box_pixel_ranges(detection.bbox)
    region = np.asarray(depth[rows, cols], dtype=np.float64)
    return rows, cols, region, np.isfinite(region) & (region > 0)


def _inside_boxes(
    detections: Sequence[Detection], rows: slice, cols: slice, shape: tuple[int, int]
) -> np.ndarray:
    """shape (h, w) bool over the pixel block starting at (rows.start, cols.start): the pixels inside any
    of the detections' boxes."""
    inside = np.zeros(shape, dtype=bool)
    for other in detections:
        other_rows, other_cols = box_pixel_ranges(other.bbox)
        top, bottom = max(other_rows.start, rows.start), min(other_rows.stop, rows.stop)
        left, right = max(other_cols.start, cols.start), min(other_cols.stop, cols.stop)
        if top < bottom and left < right:
            inside[top - rows.start : bottom - rows.start, left - cols.start : right - cols.start] = True
    return inside


def _wall(
    observation: Observation,
    points: np.ndarray,
    normals: np.ndarray,
    j: np.ndarray,
    i: np.ndarray,
    rows: slice,
    cols: slice,
    up: np.ndarray,
) -> np.ndarray:
    """(N,) bool: which of the kept pixels (j, i) (box block coordinates), with camera-frame points and normals
    (N, 3), lie on a wall behind the object (module docstring); none when no plane qualifies."""
    none = np.zeros(len(points), dtype=bool)
    known = np.linalg.norm(normals, axis=1) > 0.5  # unknown normals are zero
    vertical = np.flatnonzero(known & (np.abs(normals @ up) < math.sin(math.radians(_WALL_NORMAL_DEG))))
    if len(vertical) < _WALL_SHARE * len(points):
        return none
    rng = np.random.default_rng(0)  # the same mask every time
    best = none
    for seed in rng.choice(vertical, size=min(_WALL_TRIES, len(vertical)), replace=False):
        normal = normals[seed] - (normals[seed] @ up) * up  # horizontal: the wall stands upright
        normal /= np.linalg.norm(normal)
        offset = normal @ points[seed]
        # Normals face the camera, so the side of the plane towards the camera has n . p > offset.
        signed = points @ normal - offset
        inliers = (np.abs(signed) < _WALL_DISTANCE) & (normals @ normal > math.cos(math.radians(_WALL_NORMAL_DEG)))
        if inliers.sum() <= max(best.sum(), _WALL_SHARE * len(points)) or (~inliers).sum() == 0:
            continue
        if np.mean(signed[~inliers] > _WALL_GAP) >= _WALL_BEHIND and _goes_on(
            observation, normal, offset, j[inliers] + rows.start, i[inliers] + cols.start, rows, cols
        ):
            best = inliers
    return best


def _goes_on(
    observation: Observation, normal: np.ndarray, offset: float, r: np.ndarray, c: np.ndarray, rows: slice, cols: slice
) -> bool:
    """Whether the plane (normal . p = offset, camera frame) holds half of the image's pixels `_WALL_PROBE`
    outside the box beyond its pixels (r, c) (image rows and columns) on the box's left, right or top edge."""
    height, width = observation.depth.shape
    probe_r, probe_c = [], []
    for on_edge, dr, dc in (
        (c <= cols.start + 1, 0, cols.start - _WALL_PROBE - c),
        (c >= cols.stop - 2, 0, cols.stop - 1 + _WALL_PROBE - c),
        (r <= rows.start + 1, rows.start - _WALL_PROBE - r, 0),
    ):
        probe_r.append((r + dr)[on_edge])
        probe_c.append((c + dc)[on_edge])
    pr, pc = np.concatenate(probe_r), np.concatenate(probe_c)
    inside = (pr >= 0) & (pr < height) & (pc >= 0) & (pc < width)
    pr, pc = pr[inside], pc[inside]
    z = np.asarray(observation.depth[pr, pc], dtype=np.float64)
    valid = np.isfinite(z) & (z > 0)
    if valid.sum() < 10:
        return False
    probed = pixel_points(z[valid], pr[valid], pc[valid], observation.camera.K)
    return bool(np.mean(np.abs(probed @ normal - offset) < _WALL_DISTANCE) >= 0.5)
