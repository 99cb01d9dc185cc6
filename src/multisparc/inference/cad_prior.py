"""Priors over the CAD models of a detection's class, which rank a library before the K best are aligned
(`inference.cad_choice`); each gives a distance per model (smaller: more likely), from the detection's observed
points (camera frame, metres).

"fit" (`rank_cads_by_fit`, the default): 1 minus the best geometric score (`verification.geometric_scores`) of
the model's depth-only fits from the initial azimuths (`stages.depth_only_candidates`, the ICP baseline's fits,
nothing learned). About 60 ms a model on one core, against some 140 for aligning it. On the choose-cad
benchmark (BENCHMARKS.md, "choose-cad", 30 scenes a set, K = 10) it keeps the true model among the 10 for
90.9 % of the procedural objects (16 models a class) and 82.2 % of the SweetHome3D ones (the test half and
16 procedural models, about 18 a class), where the proportions prior kept it for 77.9 and 63.0 % (on
SweetHome3D no better than chance, 10 of 18); the chosen CAD's pose is then aligned by physical size for
84.4 and 61.6 % of the objects, against 80.5 and 57.5 %.

"proportions" (`rank_cads`): how well each model's proportions match those of the observed points. With a 3-axis
scale any model can be stretched onto any box, but real objects (and the synthetic scenes, whose per-axis
stretch is at most `SceneConfig.max_anisotropy` = 1.25) keep roughly their model's proportions. So the prior
asks how anisotropic a stretch would make the model's bounding box cover the points:

- the points' robust extents (2nd to 98th percentile) along gravity up and along two perpendicular horizontal
  directions at yaw theta, over the model's height and its x and z extents, give three per-axis ratios;
- a single view sees one axis only in part (as `depth_fit.scale_and_centre` says), so the two largest
  ratios stand for the stretch: the distance is the absolute log ratio between them, plus `DEPTH_WEIGHT`
  times the shortfall in log of the third below their mean (an axis seen in part may fall short, but not
  by much);
- the distance is the least over `N_YAWS` yaws in [0, 180 deg) (a box's extents repeat after 180 deg), so
  no pose is needed.

It costs a few percentiles per yaw and detection and nothing per model beyond its bounding box, so it can rank
a library of any size in no time, but weakly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from multisparc.cad import CadIndex
from multisparc.datasets.bundle import Detection, Observation
from multisparc.inference.initialisation import InitialisationConfig, initial_poses
from multisparc.inference.stages import PipelineStages, depth_only_candidates

#: The priors by name (module docstring), the default first.
CAD_PRIORS = ("fit", "proportions")

#: Weight of the third axis's shortfall (module docstring).
DEPTH_WEIGHT = 0.5
N_YAWS = 12
PERCENTILES = (2.0, 98.0)
_MIN_EXTENT = 1e-3  # metres: a flat or degenerate extent would make a log ratio unbounded


def observed_extents(points: np.ndarray, up: np.ndarray, n_yaws: int = N_YAWS) -> np.ndarray | None:
    """Robust extents (n_yaws, 3) metres of points (N, 3) camera frame along (a(theta), up, b(theta)) for
    n_yaws yaws theta in [0, pi), a and b horizontal and perpendicular; up (3,) unit gravity up, camera frame.
    None for fewer than 3 points."""
    if len(points) < 3:
        return None
    up = np.asarray(up, dtype=np.float64)
    low, high = np.percentile(points @ up, PERCENTILES)
    first = np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.cross(up, [0.0, 0.0, 1.0])
    first /= np.linalg.norm(first)
    second = np.cross(up, first)
    theta = np.arange(n_yaws) * np.pi / n_yaws
    a = np.cos(theta)[:, None] * first + np.sin(theta)[:, None] * second  # (n_yaws, 3)
    b = np.cross(up, a)
    along = np.concatenate([points @ a.T, points @ b.T], axis=1)  # (N, 2 n_yaws)
    lows, highs = np.percentile(along, PERCENTILES, axis=0)
    spans = np.maximum(highs - lows, _MIN_EXTENT)
    height = np.full(n_yaws, max(high - low, _MIN_EXTENT))
    return np.stack([spans[:n_yaws], height, spans[n_yaws:]], axis=1)


def proportion_distance(extents: np.ndarray, cad_extent: np.ndarray, depth_weight: float = DEPTH_WEIGHT) -> float:
    """The prior's distance (module docstring) of observed extents (n_yaws, 3) (`observed_extents`) and a CAD's
    bounding-box extent (3,) metres, CAD x, y (up), z."""
    ratios = np.sort(np.log(extents / np.maximum(np.asarray(cad_extent, dtype=np.float64), _MIN_EXTENT)), axis=1)
    mean = ratios[:, 1:].mean(axis=1)
    distance = ratios[:, 2] - ratios[:, 1] + depth_weight * np.maximum(mean - ratios[:, 0], 0.0)
    return float(distance.min())


def rank_cads(
    points: np.ndarray, up: np.ndarray, cads: CadIndex, cad_ids: Sequence[str], depth_weight: float = DEPTH_WEIGHT
) -> list[tuple[str, float | None]]:
    """`cad_ids` ordered by the prior's distance to observed points (N, 3) camera frame (nearest first, ties in
    the given order), each with its distance; without enough points, the given order and None distances."""
    extents = observed_extents(points, up)
    if extents is None:
        return [(cad_id, None) for cad_id in cad_ids]
    distances = [proportion_distance(extents, cads.extent(cad_id), depth_weight) for cad_id in cad_ids]
    order = np.argsort(distances, kind="stable")
    return [(cad_ids[i], distances[i]) for i in order]


def rank_cads_by_fit(
    observation: Observation,
    detection: Detection,
    points: np.ndarray,
    cads: CadIndex,
    cad_ids: Sequence[str],
    stages: PipelineStages,
    initialisation: InitialisationConfig,
) -> list[tuple[str, float | None]]:
    """`cad_ids` ordered by the fit prior's distance (module docstring) to the detection's observed points (N, 3)
    camera frame, nearest first, ties in the given order, each with its distance in [0, 1]; with fewer points
    than `stages.icp.min_points`, the given order and None distances."""
    if len(points) < stages.icp.min_points:
        return [(cad_id, None) for cad_id in cad_ids]
    # The initial azimuths and gravity are the same for every model: read once.
    init = initial_poses(observation, [replace(detection, cad=cad_ids[0])], cads, initialisation)
    rotations, up = init.poses.R.numpy(), init.gravity.up
    distances = []
    for cad_id in cad_ids:
        candidate = replace(detection, cad=cad_id)
        _, geometric, made = depth_only_candidates(observation, [candidate], [points], cads, rotations, up, stages)
        distances.append(1.0 - float(geometric[made].max()) if made.any() else 1.0)
    order = np.argsort(distances, kind="stable")
    return [(cad_ids[i], distances[i]) for i in order]
