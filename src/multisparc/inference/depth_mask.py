"""A mask from the depth for a detection that comes with a box only.

Inside a box without a mask, most pixels may be background: the wall or the room behind, the floor in
front of and under the object. This keeps the pixels of the box that are likely the object's, camera
frame, metres:

- depth window: the valid depths of the box in 5 cm bins; the nearest bin holding at least
  `_MODE_SHARE` of the fullest one is the object's front; pixels from `_FRONT_MARGIN` before it to the
  class's typical horizontal diagonal behind it are kept (the wall behind the object falls out);
- other detections: the front is read from the pixels of the box outside the image's other boxes when
  they are at least `_OWN_SHARE` of its valid pixels. An object in front of this one, reaching into its
  box, is another detection, and its pixels there would otherwise be taken for this object's front (the
  window then drops them, since they lie before the front);
- floor: when the lowest kept pixels face up (normal within `_FLOOR_CONE_DEG` of gravity up), the
  up-facing pixels within `_FLOOR_BAND` of them are dropped (a table top or a seat faces up too, but it
  is not the lowest surface in its box).

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
from multisparc.inference.initialisation import box_pixel_ranges

_BIN = 0.05
_MODE_SHARE = 0.25
_FRONT_MARGIN = 0.1
_FLOOR_CONE_DEG = 20.0
_FLOOR_BAND = 0.05
_OWN_SHARE = 0.2
# Fewer kept pixels than this share of the box's valid ones and the box itself is returned.
_MIN_KEPT_SHARE = 0.05


def depth_mask(
    observation: Observation, detection: Detection, up: np.ndarray, others: Sequence[Detection] = ()
) -> np.ndarray:
    """(H, W) bool mask of the detection's likely pixels (module docstring); the box's valid pixels when
    the depth tells nothing. up (3,) gravity in the camera frame; others: the image's other detections.
    Needs the observation's depth."""
    depth = np.asarray(observation.depth, dtype=np.float64)
    height, width = depth.shape
    rows, cols = box_pixel_ranges(detection.bbox)
    region = depth[rows, cols]
    valid = np.isfinite(region) & (region > 0)
    mask = np.zeros((height, width), dtype=bool)
    if not valid.any():
        mask[rows, cols] = True
        return mask
    own = valid & ~_inside_boxes(others, rows, cols, region.shape)
    values = region[own] if own.sum() >= _OWN_SHARE * valid.sum() else region[valid]
    edges = np.arange(values.min(), values.max() + 2 * _BIN, _BIN)
    counts, _ = np.histogram(values, bins=edges)
    front = edges[np.flatnonzero(counts >= _MODE_SHARE * counts.max())[0]]
    size = category_info(detection.category).typical_size
    reach = math.hypot(size[0], size[2])
    keep = valid & (region >= front - _FRONT_MARGIN) & (region <= front + _BIN + reach)
    if observation.normals is not None:
        j, i = np.nonzero(keep)
        z = region[j, i]
        uv1 = np.stack([i + cols.start, j + rows.start, np.ones_like(z)], axis=1)
        points = z[:, None] * (uv1 @ np.linalg.inv(observation.camera.K).T)
        normals = np.asarray(observation.normals[rows, cols], dtype=np.float64)[j, i]
        upward = normals @ up > math.cos(math.radians(_FLOOR_CONE_DEG))
        level = points @ up
        # Up-facing pixels at the bottom of what is kept are floor; a table top is up-facing, but higher.
        if upward.any() and level[upward].min() <= level.min() + _FLOOR_BAND:
            floor = upward & (level <= level[upward].min() + _FLOOR_BAND)
            keep[j[floor], i[floor]] = False
    if keep.sum() < _MIN_KEPT_SHARE * valid.sum():
        keep = valid
    mask[rows, cols] = keep
    return mask


def with_depth_masks(observation: Observation, detections: Sequence[Detection], up: np.ndarray) -> list[Detection]:
    """The detections, each without a mask given one read from the depth (`depth_mask`, the others of the
    image as its `others`); up (3,) gravity in the camera frame."""
    return [
        det
        if det.mask is not None
        else replace(det, mask=depth_mask(observation, det, up, [other for other in detections if other is not det]))
        for det in detections
    ]


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
