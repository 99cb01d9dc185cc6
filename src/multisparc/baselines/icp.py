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
   truncated residual) wins. With `IcpConfig.back_faces` (the method ``icp-back-faces``), ICP and score
   pair points with back-facing samples too: under depth noise the points behind a thin part's front face
   find its back face nearest, and dropping them pulls the fit towards the camera. A detection with fewer
   than `min_points` valid points keeps the first initial pose with score 0.

The result is an `AlignmentResult` like the network's, so `predictions.json` and the evaluation treat
both alike: its trajectory has 3 steps (the network's initial poses, the ICP start after step 3, the
ICP result) and its logits are those of the scores (clipped away from 0 and 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from multisparc.cad import CadIndex, UnknownCadId
from multisparc.datasets.bundle import BundleError, Detection, Observation, SceneBundle, read_bundle
from multisparc.geometry import Pose
from multisparc.inference.depth_fit import IcpConfig, SurfaceSamples, depth_only_fits, detection_points
from multisparc.inference.initialisation import InitialisationConfig, initial_poses
from multisparc.inference.pipeline import clip_detections
from multisparc.inference.result import AlignmentResult
from multisparc.inference.timers import StageTimer
from multisparc.inference.verification import fit_score, free_space_violation

# Scores are kept as logits in AlignmentResult; clipping keeps a score of 0 or 1 finite there.
_SCORE_EPS = 1e-6


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

        def score(model: SurfaceSamples, R: np.ndarray, t: np.ndarray) -> float:
            violation = free_space_violation(model.points @ R.T + t, observation.depth, observation.camera.K, tau)
            return fit_score(points, model, R, t, tau, config.back_faces) * (1.0 - violation)

        fits = depth_only_fits(points, cad_points, cad_normals, extent, cad_centre, det.category, R0, up, config)
        start, fitted = fits.start, fits.fitted
        for h in range(len(R0)):
            scores[0, h] = score(SurfaceSamples(cad_points, cad_normals, s0[h]), R0[h], t0[h])
            scores[1, h] = score(SurfaceSamples(cad_points, cad_normals, start[2][h]), start[0][h], start[1][h])
            scores[2, h] = score(fits.models[h], fitted[0][h], fitted[1][h])
        return (start, fitted), scores
