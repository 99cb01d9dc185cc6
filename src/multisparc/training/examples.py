"""Initial poses of training examples (paper Supp. B): update examples and classifier examples.

Rotation offsets are Euler angles of the CAD frame relative to the ground truth,
`R = R_gt @ Rz(tilt) @ Rx(elevation) @ Ry(azimuth)`: azimuth turns the model about its own up axis
(CAD +Y, gravity up for a standing object), elevation about its x axis and tilt about its z axis.

Update examples (3 in 4 objects): T through a uniform point of the detection box lifted to
z ~ U(1, 5) m; S per axis uniform in the class's scale range for that CAD; R uniform within 10 deg tilt,
45 deg azimuth and 20 deg elevation of the ground truth. Optionally (`near_ratio`, 0 in the paper) a
share of them starts where the test-time initialisation puts a model instead: on the ray through a
point near the box centre (within 10 % of the box size) at the true depth times a factor within
1/1.25 .. 1.25, as a depth map read inside the box gives it. With a small training budget this spends
the updates on the poses the pipeline meets, rather than on learning coarse distances first.

Classifier examples (1 in 4 objects) are drawn around the ground truth from the regions below (the
paper's Table 3 gives the idea, not its numbers). Offsets are uniform within the bounds: translation
in the camera frame, scale relative per CAD axis. "turned" adds a turn by 0, 90, 180 or 270 deg about
the up axis, so the classifier sees right-place-wrong-facing poses as the 4 test-time initialisations
produce them (wrong unless the model is symmetric).

| region   | frequency | rotation (tilt, azim., elev.) deg | translation m | scale | turn | labels       |
|----------|-----------|-----------------------------------|---------------|-------|------|--------------|
| near     | 0.30      | 5, 10, 5                          | 0.08          | 0.08  | no   | all correct  |
| medium   | 0.20      | 10, 30, 10                        | 0.20          | 0.25  | no   | 1 in 3 right |
| far      | 0.15      | 20, 45, 20                        | 0.50          | 0.50  | no   | wrong        |
| turned   | 0.25      | 5, 10, 5                          | 0.08          | 0.08  | yes  | by symmetry  |
| offset   | 0.10      | 2, 5, 2                           | 0.25          | 0.25  | no   | 1 in 4 right |

With the symmetry mix of the procedural library about half of the labels are positive
(`tests/test_training.py` measures it).

Hypothesis examples (optional, `TrainConfig.refined_classifier_ratio`, 0 in the paper): classifier
examples that start as a test-time hypothesis, the update example's initial pose turned by 0, 90, 180
or 270 deg about the up axis (of the 4 initialisations one lies within 45 deg of the truth), and then
follow the network's own refinements, classified at every pass. The region draws above are poses near
the truth; at test time the score must rank the refined hypotheses, which the network leaves in places
no region covers (a wrong-facing model pulled off the object, a scale stretched to fit), so the
classifier also learns on those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import roma
import torch

from multisparc.geometry import Pose, axis_angle_y, backproject

#: Update examples: maximum (tilt, azimuth, elevation) offsets from the ground truth, degrees.
UPDATE_ROTATION_DEG = (10.0, 45.0, 20.0)
#: Update examples: range of the z-depth (metres) of the initial translation.
UPDATE_DEPTH_RANGE = (1.0, 5.0)
#: Near update examples: the pixel within this fraction of the box size of its centre, and the depth
#: within this factor (either way) of the true depth.
NEAR_BOX_JITTER = 0.1
NEAR_DEPTH_FACTOR = 1.25


@dataclass(frozen=True)
class PoseRegion:
    """A region around the ground truth to draw classifier examples from (uniform within the bounds).

    frequency: relative sampling frequency; rotation_deg: max |tilt|, |azimuth|, |elevation| degrees;
    translation_m: max |offset| per camera axis, metres; scale: max relative scale offset per CAD axis;
    discrete_turn: also turn by a uniform multiple of 90 deg about the up axis.
    """

    name: str
    frequency: float
    rotation_deg: tuple[float, float, float]
    translation_m: float
    scale: float
    discrete_turn: bool = False


CLASSIFIER_REGIONS: tuple[PoseRegion, ...] = (
    PoseRegion("near", 0.30, (5.0, 10.0, 5.0), 0.08, 0.08),
    PoseRegion("medium", 0.20, (10.0, 30.0, 10.0), 0.20, 0.25),
    PoseRegion("far", 0.15, (20.0, 45.0, 20.0), 0.50, 0.50),
    PoseRegion("turned", 0.25, (5.0, 10.0, 5.0), 0.08, 0.08, discrete_turn=True),
    PoseRegion("offset", 0.10, (2.0, 5.0, 2.0), 0.25, 0.25),
)


def _uniform(rng: np.random.Generator, bound, size) -> np.ndarray:
    """Uniform in [-bound, bound] (bound broadcast against size)."""
    return rng.uniform(-1.0, 1.0, size) * np.asarray(bound, dtype=np.float64)


def perturb_rotation(R: torch.Tensor, max_deg: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """R (n, 3, 3) turned in its own frame by uniform (tilt, azimuth, elevation) within max_deg (n, 3) | (3,).

    Returns R @ Rz(tilt) @ Rx(elevation) @ Ry(azimuth) (n, 3, 3), same dtype as R.
    """
    tilt, azimuth, elevation = np.deg2rad(_uniform(rng, max_deg, (len(R), 3))).T
    angles = torch.as_tensor(np.stack([tilt, elevation, azimuth], axis=-1), dtype=R.dtype)
    return R @ roma.euler_to_rotmat("ZXY", angles)


def sample_update_poses(
    gt_R: torch.Tensor,
    boxes: np.ndarray,
    K: np.ndarray,
    scale_low: np.ndarray,
    scale_high: np.ndarray,
    rng: np.random.Generator,
    gt_depth: np.ndarray | None = None,
    near_ratio: float = 0.0,
) -> Pose:
    """Initial poses (n,) for learning pose updates (Supp. B, and the near ones of the module docstring).

    gt_R (n, 3, 3) ground-truth rotations; boxes (n, 4) detection boxes [x1, y1, x2, y2] pixels;
    K (3, 3) intrinsics; scale_low, scale_high (n, 3) per-axis scale range of each object's class;
    gt_depth (n,) z of the true centres in metres (0 for spurious detections, which always start wide);
    near_ratio: probability of a near start for each detection with a true depth.
    """
    n = len(boxes)
    boxes = np.asarray(boxes, dtype=np.float64)
    u = rng.uniform(boxes[:, 0], boxes[:, 2])
    v = rng.uniform(boxes[:, 1], boxes[:, 3])
    z = rng.uniform(*UPDATE_DEPTH_RANGE, n)
    if near_ratio > 0.0:
        if gt_depth is None:
            raise ValueError("near update poses need the true depths (gt_depth)")
        near = (rng.random(n) < near_ratio) & (np.asarray(gt_depth) > 0.0)
        size = boxes[:, 2:] - boxes[:, :2]
        centre = 0.5 * (boxes[:, :2] + boxes[:, 2:]) + _uniform(rng, NEAR_BOX_JITTER, (n, 2)) * size
        factor = np.exp(_uniform(rng, math.log(NEAR_DEPTH_FACTOR), n))
        u, v = np.where(near, centre[:, 0], u), np.where(near, centre[:, 1], v)
        z = np.where(near, np.asarray(gt_depth) * factor, z)
    t = backproject(torch.as_tensor(np.stack([u, v], -1)), torch.as_tensor(z), torch.as_tensor(K, dtype=torch.float64))
    s = rng.uniform(scale_low, scale_high, (n, 3))
    R = perturb_rotation(gt_R, np.asarray(UPDATE_ROTATION_DEG), rng)
    return Pose(R, t.to(gt_R.dtype), torch.as_tensor(s, dtype=gt_R.dtype))


def sample_classifier_poses(
    gt: Pose, rng: np.random.Generator, regions: tuple[PoseRegion, ...] = CLASSIFIER_REGIONS
) -> Pose:
    """Poses (n,) for learning the classification score, around the ground truth gt (n,) (module table)."""
    n = gt.shape[0]
    frequencies = np.array([region.frequency for region in regions])
    chosen = [regions[i] for i in rng.choice(len(regions), size=n, p=frequencies / frequencies.sum())]
    rotation_bounds = np.array([region.rotation_deg for region in chosen]).reshape(n, 3)
    R = perturb_rotation(gt.R, rotation_bounds, rng)
    quarter_turns = rng.integers(0, 4, n) * np.array([region.discrete_turn for region in chosen])
    translation_bounds = np.array([region.translation_m for region in chosen])[:, None]
    t = gt.t + torch.as_tensor(_uniform(rng, translation_bounds, (n, 3)), dtype=gt.t.dtype)
    scale_bounds = np.array([region.scale for region in chosen])[:, None]
    s = gt.s * (1.0 + torch.as_tensor(_uniform(rng, scale_bounds, (n, 3)), dtype=gt.s.dtype))
    return turn_about_up(Pose(R, t, s), quarter_turns * (math.pi / 2))


def turn_about_up(poses: Pose, angles: torch.Tensor | np.ndarray) -> Pose:
    """poses (n,) each turned by angles (n,) radians about its own up axis (CAD +Y); t and s kept."""
    turn = axis_angle_y(torch.as_tensor(angles, dtype=poses.R.dtype, device=poses.R.device))
    return Pose(poses.R @ turn, poses.t, poses.s)


def turn_hypotheses(poses: Pose, rng: np.random.Generator) -> Pose:
    """poses (n,) turned each by a uniform multiple of 90 deg about its own up axis: the test-time
    hypothesis a training pose stands for (module docstring, hypothesis examples)."""
    return turn_about_up(poses, rng.integers(0, 4, poses.shape[0]) * (math.pi / 2))


def choose_classifier_examples(n: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Bool (n,): each object independently a classifier example with probability `ratio` (paper 1:3)."""
    return rng.random(n) < ratio
