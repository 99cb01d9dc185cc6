"""A start read from the observation: each detection's centre and scale from its back-projected depth.

The paper's start (`initialisation.initial_poses`) puts the centre on the ray through the box centre, half
the class's typical depth behind the median depth, with the class's typical scale. This start keeps its
rotations (the n azimuths about gravity up) and replaces, per detection with enough observed points
(`depth_fit.detection_points`: the mask's pixels, else the box's, background beyond the class's reach
dropped), camera frame, metres:

- scale: isotropic, the points' extent along gravity up (2nd to 98th percentile, over the 96 % of a
  uniform spread that span) over the CAD's height
  (CAD +Y), clamped to the class's size range; the class's typical scale when the box touches the top or
  bottom of the image (the object is cut there, its height unseen);
- centre: the points' trimmed mean (each coordinate's mean without its lowest and highest `_TRIM`: robust
  to the stray background a mask's edge or a box lets in, and steadier than the median), moved into
  the scaled model's box under each hypothesis's rotation: the visible points lie on the box's faces that
  face the camera, each face in view by its apparent area (area times |cos| of its normal with the
  viewing ray), and each face centre lies half the box's size along its normal from the box centre; the
  centroid moves by the area-weighted mean of those half-sizes, along the faces' inward normals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import trim_mean

from multisparc.cad import CadIndex
from multisparc.categories import scale_range, typical_scale
from multisparc.datasets.bundle import Detection, Observation
from multisparc.geometry import Pose
from multisparc.inference.initialisation import Initialisation

# Pixels of the image border within which a box edge counts as touching it.
_BORDER_PIXELS = 2.0
# Share of each coordinate's lowest and highest values the centroid leaves out.
_TRIM = 0.1
# Percentiles of the points along up that bound the observed height, and the share of a uniform spread's
# full range they span (the height is divided by it).
_HEIGHT_PERCENTILES = (2.0, 98.0)
_HEIGHT_SPAN = (_HEIGHT_PERCENTILES[1] - _HEIGHT_PERCENTILES[0]) / 100.0


def observed_scale(points: np.ndarray, up: np.ndarray, detection: Detection, cads: CadIndex, height: int) -> np.ndarray:
    """Isotropic scale (3,) of a detection from its points (N, 3) camera frame and gravity up (3,)
    (module docstring); `height` of the image in pixels."""
    extent = cads.extent(detection.cad)
    _, y1, _, y2 = (float(v) for v in detection.bbox)
    if y1 <= _BORDER_PIXELS or y2 >= height - 1 - _BORDER_PIXELS:
        return typical_scale(detection.category, extent)
    along_up = points @ up
    low, high = np.percentile(along_up, _HEIGHT_PERCENTILES)
    smallest, largest = scale_range(detection.category, extent)
    ratio = (high - low) / _HEIGHT_SPAN / extent[1]
    return np.full(3, float(np.clip(ratio, smallest[1], largest[1])))


def observed_start(
    init: Initialisation,
    points: Sequence[np.ndarray],
    detections: Sequence[Detection],
    cads: CadIndex,
    observation: Observation,
) -> Initialisation:
    """The paper's initial poses (H, K) with centres and scales read from each detection's observed points
    (K lists of (N_k, 3) camera frame; a detection with none keeps the paper's); rotations unchanged."""
    R, t, s = (value.numpy().copy() for value in (init.poses.R, init.poses.t, init.poses.s))
    up = init.gravity.up
    for k, det in enumerate(detections):
        if not len(points[k]):
            continue
        scale = observed_scale(points[k], up, det, cads, observation.camera.height)
        centroid = trim_mean(points[k], _TRIM, axis=0)
        ray = centroid / np.linalg.norm(centroid)
        size = scale * cads.extent(det.cad)
        cosines = np.einsum("c,hca->ha", ray, R[:, k])  # (H, 3): the ray against each object axis
        face_area = np.prod(size) / size  # the face normal to axis a spans the other two sizes
        # A face is in view only from outside its slab: the camera (the origin) farther from the centroid along
        # the axis than half the size (the centroid stands in for the unknown centre).
        outside = np.abs(np.einsum("c,hca->ha", centroid, R[:, k])) > 0.5 * size
        seen = np.abs(cosines) * face_area * outside + 1e-12
        weight = seen / seen.sum(axis=1, keepdims=True)
        inward = np.sign(cosines)[:, None, :] * R[:, k]  # (H, 3, 3): column a, the inward normal of face a
        centre = centroid + np.einsum("hca,ha->hc", inward, weight * 0.5 * size)
        t[:, k] = centre - np.einsum("hij,j->hi", R[:, k], scale * cads.centre(det.cad))
        s[:, k] = scale
    poses = Pose.from_numpy(R, t, s).to(dtype=init.poses.t.dtype)
    return Initialisation(poses, init.surface_depth, init.depth_source, init.gravity)
