"""The test-time stages beyond the paper, each a switch of `PipelineStages` (DESIGN section 7).

The paper's pipeline (`PIPELINES["paper"]`): initial poses, network refinements, choice by the learned
score. The full pipeline (`PIPELINES["full"]`, the default) adds, per detection:

- room_depth (first): the depth's smooth error read from the room around the objects (`room_depth`: the floor
  and the walls are planes whose orientation gravity fixes; where the depth bends them it is off) and
  divided out of the depth every later stage and the network read. Needs the camera's own gravity up
  (camera.json "up"): one estimated from the normals tilts the floor enough to be read as error;
- depth_mask (before the network): a box without a mask gets one read from the depth (`depth_mask`), for
  the network's mask channel and the observed points below;
- verify (after the network): every refined hypothesis is also scored by its geometric agreement with the
  observation (`verification.geometric_scores`: the observed points on the model's surface, no model in
  front of the observed depth, the projected model's box on the box of the detection's mask, `overlap_box`),
  and the hypothesis of highest fused score `learned logit + fusion_weight * geometric score` wins;
- fit: the `fit_top` refined hypotheses of highest fused score are fitted to the observed depth (a scale
  read from the points' extents in the hypothesis's axes, blended in log space with the network's by
  `scale_blend`, then gravity-constrained ICP of yaw and translation, `depth_fit.icp`);
- depth_only: the depth-only fit from each initial azimuth (`depth_fit.depth_only_fits`, the ICP
  baseline's, nothing learned) is one more candidate of that hypothesis.
  The network scores the fits in one more pass, and per hypothesis the option of highest fused score
  (refined pose, its fit, the depth-only fit) is the final pose (`best_of`). An image whose detections'
  best fits agree with the depth by less than `fit_gate` (median over its detections of the best fitted
  geometric score) keeps the network's poses and its learned choice: there the depth is too noisy for a
  fit or a geometric score to be trusted;
- noise_tau (with verify): the score's tolerance tau and the fits' final trim follow each detection's depth
  noise, read on its own pixels (`depth_noise`): twice the noise, never below 7 cm. A tau below the noise
  squeezes every pose's score, and the margins between poses with it, towards 0, which leaves a noisy
  image's choice more to the learned score (BENCHMARKS.md, "Test-time stages: the verification's tau",
  against a fixed 5 cm);
- start (an ablation row, off in "full"): initial centres and scales read from the observed depth
  (`observed_start`). The start is nearer, yet the shipped network, trained from starts like the paper's,
  gains little from it on clean depth and loses with predicted-like depth (BENCHMARKS.md, "+start");
  a switch for a network trained with it.

The stages find the nearest CAD sample of an observed point in a table per model (`cad.nearest`, exact
for about 99 % of the points near the surface) rather than in a kd tree built for every scale: about a
fifth less time per image, with the same accuracy over two pixel-sampling seeds (BENCHMARKS.md, "Test-time
stages: full against exact"). The pipeline "exact" is "full" with kd trees (`IcpConfig.lookup`).

The fusion weight, the gate, the scale blend and the ICP settings were chosen on the first 40 scenes of the
four benchmark sets; BENCHMARKS.md ("Test-time stages") has the ablation on all 100 of each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from multisparc.cad import CadIndex
from multisparc.cad.nearest import NearestSampleGrid
from multisparc.datasets.bundle import Detection, Observation
from multisparc.geometry import Pose
from multisparc.inference.depth_fit import (
    IcpConfig,
    SurfaceSamples,
    depth_only_fits,
    detection_points,
    icp,
    scale_and_centre,
)
from multisparc.inference.depth_noise import white_noise
from multisparc.inference.initialisation import box_pixel_ranges
from multisparc.inference.room_depth import RoomDepthConfig
from multisparc.inference.verification import geometric_scores
from multisparc.render import instance_boxes

# The stages' ICP: the baseline's with a looser convergence test (1 mm, 1 mrad), one round of scale and ICP
# for the depth-only fits, 14 iterations, and fewer observed points (350) and CAD samples (2000), for speed:
# the depth fits dominate the full pipeline's time (BENCHMARKS.md, `bench stages`). The full pipeline's rows
# there are made with these settings; against 20 iterations on 500 points they kept its accuracy within the
# seed-to-seed spread (BENCHMARKS.md, "the full pipeline over two pixel-sampling seeds"). The score's tau and
# the fits' final trim start at 7 cm rather than the baseline's 5 (`PipelineStages.noise_tau` raises them
# further where the depth is noisy; BENCHMARKS.md, "Test-time stages: the verification's tau"). Nearest CAD
# samples from a table per model (module docstring).
STAGE_ICP = IcpConfig(
    tolerance=1e-3, rounds=1, iterations=14, max_points=350, model_points=2000, inlier_distance=0.07,
    lookup="grid",
)


# The room's depth correction's settings (`room_depth`), chosen on the realistic sets (BENCHMARKS.md).
STAGE_ROOM_DEPTH = RoomDepthConfig()


@dataclass(frozen=True)
class PipelineStages:
    """Which test-time stages run (module docstring) and their settings.

    start, depth_mask, verify, fit, depth_only: the switches (fit needs verify: the verification keeps a fit;
    depth_only needs fit: it shares its gate and scoring pass).
    fusion_weight: weight of the geometric score (in [0, 1]) added to the learned logit.
    overlap_power: exponent of the box overlap in the geometric score.
    fit_gate: the median best fitted geometric score an image needs for its fits to be considered.
    scale_blend: share (0 to 1, in log space) of the depth's scale estimate in the fitted scale; the rest
        is the network's.
    depth_mask_scale_blend, depth_mask_scale_agreement: for detections whose mask was read from the depth
        (`depth_mask`), whose extents take in floor, wall or a neighbour, or miss parts, far more often than a
        given mask's, the depth's scale is blended by depth_mask_scale_blend only on the axes where it lies
        within depth_mask_scale_agreement (absolute log ratio) of the network's; on the others the network's
        is kept. On the first 40 scenes of the boxes sets (procedural, SweetHome3D): keeping the network's
        scale on every axis 68.8 / 67.3 %, blending every axis by 0.25 67.7 / 69.4 %, by agreement within
        0.05 or 0.1 (blend 0.5 or 1) 68.8 / 69.4 %, within 0.2 67.7 / 66.3 %. The same rule for given masks
        loses on three of the four main sets (procedural clean 82.3 -> 80.2 %).
    fit_top: the hypotheses of highest fused score that are fitted, per detection (the others cost time
        and are rarely chosen).
    depth_only_top: the depth-only starts of highest geometric score that are fitted, per detection.
    per_axis_scale: the fit reads a scale per axis from the depth (`depth_fit.scale_and_centre`), else one.
    icp: the observed points, ICP and geometric-score settings (`inlier_distance` is the score's tau).
    mask_box: the projected model's box is compared with the bounding box of the detection's own mask (when it
        came with one) rather than with its box (`overlap_box`).
    score_back_faces: the geometric score pairs observed points with back-facing CAD samples too
        (`verification.fit_scores`, back_faces).
    room_depth: the settings of the room's depth correction (`room_depth.RoomDepthConfig`), None for none.
    noise_tau: when above 0, each detection's score tau and ICP trimming (`icp.inlier_distance`) is raised to
        noise_tau times the white depth noise read on its pixels (`depth_noise`), never below the config's:
        a tau below the noise squeezes the scores of good and bad poses alike towards 0 (`detection_configs`).
        Both measured on the four main sets, two pixel-sampling seeds each (BENCHMARKS.md, "Test-time
        stages: the verification's box and back faces").
    """

    start: bool = False
    depth_mask: bool = True
    verify: bool = True
    fit: bool = True
    depth_only: bool = True
    fusion_weight: float = 20.0
    overlap_power: float = 2.0
    fit_gate: float = 0.07
    scale_blend: float = 0.5
    depth_mask_scale_blend: float = 0.5
    depth_mask_scale_agreement: float = 0.1
    fit_top: int = 2
    depth_only_top: int = 4
    per_axis_scale: bool = True
    icp: IcpConfig = STAGE_ICP
    mask_box: bool = True
    score_back_faces: bool = True
    noise_tau: float = 2.0
    room_depth: RoomDepthConfig | None = STAGE_ROOM_DEPTH

    def __post_init__(self) -> None:
        if self.depth_only and not self.fit:
            raise ValueError("depth_only candidates are scored with the fits: they need fit=True")
        if self.fit and not self.verify:
            raise ValueError("a fit is kept by the verification: fit=True needs verify=True")
        if not (math.isfinite(self.fusion_weight) and self.fusion_weight >= 0):
            raise ValueError(f"fusion_weight must be a non-negative number, got {self.fusion_weight!r}")
        if not (math.isfinite(self.noise_tau) and self.noise_tau >= 0):
            raise ValueError(f"noise_tau must be a non-negative number, got {self.noise_tau!r}")
        if not self.overlap_power >= 0:
            raise ValueError(f"overlap_power must be non-negative, got {self.overlap_power!r}")
        if not 0.0 <= self.fit_gate <= 1.0:
            raise ValueError(f"fit_gate must lie in [0, 1], got {self.fit_gate!r}")
        for name in ("fit_top", "depth_only_top"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("scale_blend", "depth_mask_scale_blend"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if not self.depth_mask_scale_agreement >= 0:
            agreement = self.depth_mask_scale_agreement
            raise ValueError(f"depth_mask_scale_agreement must be non-negative, got {agreement!r}")


PIPELINES: dict[str, PipelineStages] = {
    "paper": PipelineStages(start=False, depth_mask=False, verify=False, fit=False, depth_only=False, room_depth=None),
    "+start": PipelineStages(start=True, depth_mask=False, verify=False, fit=False, depth_only=False, room_depth=None),
    "+mask": PipelineStages(depth_mask=True, verify=False, fit=False, depth_only=False, room_depth=None),
    "+verify": PipelineStages(depth_mask=False, verify=True, fit=False, depth_only=False, room_depth=None),
    # A fit is kept by the verification: +fit needs it.
    "+fit": PipelineStages(depth_mask=False, verify=True, fit=True, depth_only=False, room_depth=None),
    "full": PipelineStages(),  # the observed start is off (module docstring)
    # The full pipeline with the nearest CAD samples of its fits and scores from exact kd trees, one per
    # model and scale (module docstring; BENCHMARKS.md, "Test-time stages: full against exact").
    "exact": PipelineStages(icp=replace(STAGE_ICP, lookup="kdtree")),
    # The full pipeline without the depth's error read from the room (`room_depth`): its ablation row.
    "full-no-room": PipelineStages(room_depth=None),
}


def pipeline_stages(name: str) -> PipelineStages:
    """The stages of a named pipeline; ValueError naming the known ones otherwise."""
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; expected one of {', '.join(PIPELINES)}")
    return PIPELINES[name]


@dataclass
class HypothesisFits:
    """Geometric scores and depth fits of refined hypotheses (H, K) of one image.

    geometric: (H, K) score of each refined pose. fitted: poses (H, K) after the fit (the refined pose
    where a detection has too few observed points). fitted_geometric: (H, K) their scores. tried: (H, K)
    bool, the hypotheses that were fitted. gate: the image's median over detections of the best fitted
    score.
    """

    geometric: np.ndarray
    fitted: Pose
    fitted_geometric: np.ndarray
    tried: np.ndarray
    gate: float


def observed_points(
    observation: Observation, detections: list[Detection], config: IcpConfig, seed: int
) -> list[np.ndarray]:
    """Camera-frame points (N_k, 3) of each detection (`depth_fit.detection_points`; (0, 3) when too few),
    drawn by a generator seeded by (seed, detection id) as the network's box pixels are."""
    return [
        detection_points(observation, det, config, np.random.default_rng([seed, det.id % 2**64]))[0]
        for det in detections
    ]


def detection_configs(
    observation: Observation, detections: Sequence[Detection], stages: PipelineStages
) -> list[IcpConfig]:
    """Each detection's ICP and score settings: `stages.icp`, with `noise_tau` its inlier distance (the score's
    tau, the ICP's final trim) raised to noise_tau times the white depth noise on the detection's mask (its
    box when it has none; `depth_noise.white_noise`), that product taken at most as half the ICP's max_distance."""
    if not stages.noise_tau:
        return [stages.icp] * len(detections)
    depth = np.asarray(observation.depth)
    configs = []
    for det in detections:
        pixels = det.mask if det.mask is not None else _box_pixels(det.bbox, depth.shape)
        noise = white_noise(depth, np.asarray(pixels, dtype=bool))
        tau = max(stages.icp.inlier_distance, min(stages.noise_tau * noise, 0.5 * stages.icp.max_distance))
        configs.append(replace(stages.icp, inlier_distance=tau) if tau != stages.icp.inlier_distance else stages.icp)
    return configs


def _box_pixels(box: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The pixels (H, W) bool of an image of `shape` inside box [x1, y1, x2, y2] (`box_pixel_ranges`)."""
    pixels = np.zeros(shape[:2], dtype=bool)
    pixels[box_pixel_ranges(box)] = True
    return pixels


def _configs_of(
    detections: Sequence[Detection], stages: PipelineStages, configs: Sequence[IcpConfig] | None
) -> Sequence[IcpConfig]:
    """The given per-detection configs, or `stages.icp` for every detection."""
    if configs is None:
        return [stages.icp] * len(detections)
    if len(configs) != len(detections):
        raise ValueError(f"{len(configs)} ICP configs for {len(detections)} detections")
    return configs


def score_and_fit(
    observation: Observation,
    detections: list[Detection],
    points: list[np.ndarray],
    cads: CadIndex,
    poses: Pose,
    logits: np.ndarray,
    up: np.ndarray,
    stages: PipelineStages,
    depth_masked: Sequence[bool] | None = None,
    configs: Sequence[IcpConfig] | None = None,
) -> HypothesisFits:
    """Geometric scores of refined poses (H, K) float64 and, when `stages.fit`, the depth fits of the
    `fit_top` hypotheses of highest fused score per detection (the others keep their pose and score).

    points: each detection's observed points (`observed_points`); logits (H, K) the network's of the
    poses; up (3,) gravity in the camera frame; depth_masked (K,): whether each detection's mask was read
    from the depth (its fit then blends scales by `depth_mask_scale_blend` where they agree; default: none was);
    configs (K,): each detection's ICP and score settings (`detection_configs`; default: `stages.icp`).
    """
    configs = _configs_of(detections, stages, configs)
    boxes = overlap_boxes(detections, stages, depth_masked)
    R, t, s = (value.numpy().copy() for value in (poses.R, poses.t, poses.s))
    n_hyp, n_det = R.shape[:2]
    geometric = np.zeros((n_hyp, n_det))
    fitted_geometric = np.zeros((n_hyp, n_det))
    R_fit, t_fit, s_fit = R.copy(), t.copy(), s.copy()
    tried = np.zeros((n_hyp, n_det), dtype=bool)
    for k, det in enumerate(detections):
        if not len(points[k]):
            continue
        config = configs[k]
        cad_points, cad_normals, lookup = cad_surface(cads, det.cad, config)
        extent, cad_centre = cads.extent(det.cad), cads.centre(det.cad)
        # One scaled model per hypothesis, kept for its fit (a kd tree is built once).
        models = [SurfaceSamples(cad_points, cad_normals, s[h, k], lookup) for h in range(n_hyp)]
        geometric[:, k] = _geometric(observation, boxes[k], points[k], models, R[:, k], t[:, k], stages, config)
        fitted_geometric[:, k] = geometric[:, k]
        if not stages.fit:
            continue
        top = np.argsort(-fuse(logits[:, k], geometric[:, k], stages), kind="stable")[: stages.fit_top]
        rotation, translation = icp(
            points[k], [models[h] for h in top], R[top, k], t[top, k], s[top, k] * cad_centre, up, config
        )
        # A scale from the points' extents in the fitted axes, blended with the network's; the centres stay.
        centre = translation + (rotation @ (s[top, k] * cad_centre)[..., None])[..., 0]
        observed_scale = scale_and_centre(
            points[k], rotation, extent, det.category, config.percentiles, per_axis=stages.per_axis_scale
        )[0]
        blend = stages.scale_blend
        if depth_masked is not None and depth_masked[k]:
            agrees = np.abs(np.log(observed_scale / s[top, k])) < stages.depth_mask_scale_agreement  # (fit_top, 3)
            blend = np.where(agrees, stages.depth_mask_scale_blend, 0.0)
        scale = np.exp(blend * np.log(observed_scale) + (1 - blend) * np.log(s[top, k]))
        translation = centre - (rotation @ (scale * cad_centre)[..., None])[..., 0]
        refitted = [SurfaceSamples(cad_points, cad_normals, value, lookup) for value in scale]
        rotation, translation = icp(points[k], refitted, rotation, translation, scale * cad_centre, up, config)
        R_fit[top, k], t_fit[top, k], s_fit[top, k] = rotation, translation, scale
        fitted_geometric[top, k] = _geometric(
            observation, boxes[k], points[k], refitted, rotation, translation, stages, config
        )
        tried[top, k] = True
    gate = float(np.median(fitted_geometric.max(axis=0))) if n_det else 0.0
    fitted = Pose.from_numpy(R_fit, t_fit, s_fit).to(dtype=poses.t.dtype)
    return HypothesisFits(geometric, fitted, fitted_geometric, tried, gate)


def cad_surface(
    cads: CadIndex, cad_id: str, config: IcpConfig
) -> tuple[np.ndarray, np.ndarray, NearestSampleGrid | None]:
    """A CAD's `config.model_points` surface samples and normals (M, 3) float64, CAD frame, and their
    nearest-sample lookup when `config.lookup` is "grid" (else None: kd trees, `SurfaceSamples`)."""
    points, normals = (np.asarray(a, dtype=np.float64) for a in cads.points(cad_id, config.model_points))
    lookup = cads.nearest_samples(cad_id, config.model_points) if config.lookup == "grid" else None
    return points, normals, lookup


def fuse(logits: np.ndarray, geometric: np.ndarray, stages: PipelineStages) -> np.ndarray:
    """Fused scores (H, K): learned logits (H, K) plus fusion_weight times geometric scores (H, K)."""
    return logits + stages.fusion_weight * geometric


def depth_only_candidates(
    observation: Observation,
    detections: list[Detection],
    points: list[np.ndarray],
    cads: CadIndex,
    rotations: np.ndarray,
    up: np.ndarray,
    stages: PipelineStages,
    depth_masked: Sequence[bool] | None = None,
    configs: Sequence[IcpConfig] | None = None,
) -> tuple[Pose, np.ndarray, np.ndarray]:
    """Depth-only fits (`depth_fit.depth_only_fits`, nothing learned) of every detection from the initial
    rotations (H, K, 3, 3), of the `depth_only_top` starts of highest geometric score: poses (H, K) (the
    identity where a detection has too few observed points), their geometric scores (H, K) and whether
    each was made (H, K) bool. depth_masked and configs as in `score_and_fit`."""
    configs = _configs_of(detections, stages, configs)
    boxes = overlap_boxes(detections, stages, depth_masked)
    n_hyp, n_det = rotations.shape[:2]
    R = np.broadcast_to(np.eye(3), (n_hyp, n_det, 3, 3)).copy()
    t, s = np.zeros((n_hyp, n_det, 3)), np.ones((n_hyp, n_det, 3))
    geometric = np.zeros((n_hyp, n_det))
    made = np.zeros((n_hyp, n_det), dtype=bool)
    for k, det in enumerate(detections):
        if not len(points[k]):
            continue
        config = configs[k]
        surface = cad_surface(cads, det.cad, config)
        shape = (points[k], *surface[:2], cads.extent(det.cad), cads.centre(det.cad), det.category)
        best = np.arange(n_hyp)
        if stages.depth_only_top < n_hyp:
            start = depth_only_fits(*shape, rotations[:, k], up, config, only=(), lookup=surface[2]).start
            scores = _pose_scores(observation, boxes[k], points[k], surface, start, stages, config)
            best = np.argsort(-scores, kind="stable")[: stages.depth_only_top]
        fits = depth_only_fits(*shape, rotations[:, k], up, config, only=best.tolist(), lookup=surface[2])
        R[:, k], t[:, k], s[:, k] = fits.fitted
        models = [fits.models[h] for h in best]  # the fits' own models (with kd trees: none built twice)
        geometric[best, k] = _geometric(
            observation, boxes[k], points[k], models, R[best, k], t[best, k], stages, config
        )
        made[best, k] = True
    return Pose.from_numpy(R, t, s), geometric, made


def overlap_box(detection: Detection, stages: PipelineStages, depth_masked: bool = False) -> np.ndarray:
    """The box [x1, y1, x2, y2] pixels that a posed model's projected box is compared with: with `mask_box`,
    the tight box of the detection's mask where it came with one (inclusive pixel centres, as
    `render.instance_boxes` gives it and as `verification.box_overlaps` projects models), else its box.

    A detector's box and its mask need not agree (the realistic benchmark sets jitter each box side by up
    to a tenth of the image, and the mask follows the object), and the mask says better where the object is
    seen. A mask read from the depth (`depth_masked`) lies inside the box and may miss parts: the box is kept.
    """
    mask = detection.mask
    if not stages.mask_box or depth_masked or mask is None:
        return np.asarray(detection.bbox, dtype=np.float64)
    box = instance_boxes(np.asarray(mask, dtype=np.int32), [1]).get(1)
    return np.asarray(detection.bbox if box is None else box, dtype=np.float64)


def overlap_boxes(
    detections: Sequence[Detection], stages: PipelineStages, depth_masked: Sequence[bool] | None = None
) -> list[np.ndarray]:
    """`overlap_box` of each detection; depth_masked (K,) as in `score_and_fit` (default: none)."""
    masked = depth_masked if depth_masked is not None else [False] * len(detections)
    return [overlap_box(det, stages, was) for det, was in zip(detections, masked, strict=True)]


def _geometric(
    observation: Observation,
    box: np.ndarray,
    points: np.ndarray,
    models: list[SurfaceSamples],
    R: np.ndarray,
    t: np.ndarray,
    stages: PipelineStages,
    config: IcpConfig,
) -> np.ndarray:
    """`geometric_scores` (H,) of one detection's models (one per pose) under poses (R (H, 3, 3), t (H, 3)),
    its overlap box (`overlap_box`), with the stages' settings and the detection's tau (`config.inlier_distance`)."""
    return geometric_scores(
        points, models, R, t, observation.depth, observation.camera.K, box, config.inlier_distance,
        stages.overlap_power, stages.score_back_faces,
    )


def _pose_scores(
    observation: Observation,
    box: np.ndarray,
    points: np.ndarray,
    surface: tuple[np.ndarray, np.ndarray, NearestSampleGrid | None],
    pose: tuple[np.ndarray, np.ndarray, np.ndarray],
    stages: PipelineStages,
    config: IcpConfig,
) -> np.ndarray:
    """`_geometric` (H,) of poses (R (H, 3, 3), t (H, 3), s (H, 3)) of one detection with overlap box `box`;
    surface as `cad_surface` gives it."""
    R, t, s = pose
    models = [SurfaceSamples(surface[0], surface[1], scale, surface[2]) for scale in s]
    return _geometric(observation, box, points, models, R, t, stages, config)


def best_of(
    options: list[tuple[np.ndarray, np.ndarray, np.ndarray]], stages: PipelineStages
) -> tuple[np.ndarray, np.ndarray]:
    """Per hypothesis, the option of highest fused score among those available.

    options: (logits (H, K), geometric scores (H, K), available (H, K) bool) each; the first (the network's
    refined poses) must be available everywhere. Returns the chosen option's index (H, K) int (the first
    on ties) and its fused score (H, K).
    """
    fused = np.stack([np.where(made, fuse(logits, geometric, stages), -np.inf) for logits, geometric, made in options])
    if not np.isfinite(fused[0]).all():
        raise ValueError("the first option (the network's poses) must be available for every hypothesis")
    index = np.argmax(fused, axis=0)
    return index, np.take_along_axis(fused, index[None], axis=0)[0]
