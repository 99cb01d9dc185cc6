"""The alignment pipeline (paper Sec. 3.3 "Iterative Refinements", Fig. 4a).

For one image: every detection gets `n_hypotheses` initial poses (`initialisation`); the network
refines all of them `n_refine` times, then a last pass scores the refined poses; per detection the
hypothesis with the highest score wins (`select="score"`). `select="first"` keeps the refinement and the
scores but takes the hypothesis of the first initialisation (azimuth 0) of every detection: the paper's
"2D confidence" ablation, where a pose is not chosen by the learned score, and the 2D detection score,
equal for the hypotheses of one detection, ranks the predictions in the evaluation instead.

Batching. Box tokens are sampled once per image and reused by every pass; each pass builds the pose
tokens of all detections under all hypotheses with one pixel-source call and runs the network once:
- mode "joint" (Multi-SPARC): the detections of one hypothesis share an item of n_mul object slots,
  so they attend to each other; more detections are split into chunks of n_mul (the last chunk
  padded), an image with fewer uses as many slots as it has detections;
- mode "single": every object is an item of its own (one slot), still all in one batch;
- `sequential=True` (with mode "single"): every (detection, hypothesis) pair is refined alone, one
  forward pass at a time, as SPARC does; the baseline of the run-time comparison (paper Tab. 1).
Hypotheses and chunks always sit in the batch dimension, so they never attend to each other.

Stages beyond the paper (`inference.stages`, DESIGN section 7): `pipeline="full"` (the default) reads the
start from the observed depth, scores every refined hypothesis also by its geometric agreement with the
observation, fits each to the depth (kept where it raises the fused score; the network scores the fitted
poses in one more pass) and chooses by the fused score; `pipeline="paper"` is the paper's pipeline exactly.

Reproducibility: the box pixels of a detection are drawn from a generator seeded by (seed, detection
id), so a detection's tokens do not depend on which other detections the image has; the box tokens of
all detections yet come from one pixel-source call, once per image. Poses are kept in
float64 on the CPU, where tokens are made; only the network runs on `device`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from multisparc.cad import CadIndex, UnknownCadId
from multisparc.datasets.bundle import BundleError, Detection, Observation, SceneBundle, read_bundle
from multisparc.datasets.pixels import ImagePixelSource, PixelSource
from multisparc.geometry import Pose, apply_update, clip_box
from multisparc.inference.checkpoint import load_checkpoint
from multisparc.inference.depth_fit import IcpConfig
from multisparc.inference.depth_mask import with_depth_masks
from multisparc.inference.initialisation import Initialisation, InitialisationConfig, gravity_up, initial_poses
from multisparc.inference.observed_start import observed_start
from multisparc.inference.result import AlignmentResult, SkippedDetection
from multisparc.inference.room_depth import room_corrected
from multisparc.inference.stages import (
    HypothesisFits,
    PipelineStages,
    best_of,
    depth_only_candidates,
    detection_configs,
    fuse,
    observed_points,
    pipeline_stages,
    score_and_fit,
)
from multisparc.inference.timers import StageTimer
from multisparc.inputs import C_INPUT, InputConfig, collate_image, sample_box_tokens, step_tokens, uncollate
from multisparc.model import MultiSparcNet

log = logging.getLogger(__name__)

Mode = Literal["joint", "single"]
MODES: tuple[Mode, ...] = ("joint", "single")
Select = Literal["score", "first"]
SELECTIONS: tuple[Select, ...] = ("score", "first")
Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16")


class Aligner:
    """Aligns the detections of single images with a Multi-SPARC-Net (module docstring).

    Args:
        model: the network; moved to `device` and put in eval mode.
        input_config: token sizes the network was trained with.
        cads: the CAD index the detections' `cad` ids refer to.
        device: where the network runs ("cpu", "cuda", ...).
        n_refine: refinement passes before the scoring pass (3 in the paper).
        n_hypotheses: initial azimuths per detection (4 in the paper).
        mode: "joint" or "single" batching (module docstring).
        sequential: refine each (detection, hypothesis) pair alone; needs mode "single".
        seed: seeds the box-pixel sampling.
        initialisation: the remaining initialisation settings (its n_hypotheses is replaced by ours).
        select: "score" (the hypothesis of highest final score) or "first" (the first initialisation's).
        precision: of the network's matrix products: "float32", or "bfloat16" (autocast; about twice the
            matmul throughput on CPUs with AVX512-BF16 or AMX and on GPUs, outputs to about 3 digits).
            Tokens, poses and updates stay float32/float64 either way.
        pipeline: the test-time stages, by name ("full", "paper", or one addition: "+start", "+verify",
            "+fit", `inference.stages.PIPELINES`) or as `PipelineStages`.
    """

    def __init__(
        self,
        model: MultiSparcNet,
        input_config: InputConfig,
        cads: CadIndex,
        device: torch.device | str = "cpu",
        n_refine: int = 3,
        n_hypotheses: int = 4,
        mode: Mode = "joint",
        sequential: bool = False,
        seed: int = 0,
        initialisation: InitialisationConfig | None = None,
        select: Select = "score",
        precision: Precision = "float32",
        pipeline: str | PipelineStages = "full",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if sequential and mode != "single":
            raise ValueError("sequential alignment refines each object alone: it needs mode='single'")
        if isinstance(n_refine, bool) or not isinstance(n_refine, int) or n_refine < 0:
            raise ValueError(f"n_refine must be a non-negative integer, got {n_refine!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if model.config.compare_pairs not in (0, input_config.n_cad):
            raise ValueError(
                f"the network compares {model.config.compare_pairs} CAD points per object, but the inputs "
                f"sample n_cad = {input_config.n_cad}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = precision
        self.input_config = input_config
        self.cads = cads
        self.n_refine = n_refine
        self.mode = mode
        self.sequential = sequential
        self.seed = seed
        self.select = select
        self.initialisation = replace(initialisation or InitialisationConfig(), n_hypotheses=n_hypotheses)
        self.stages = pipeline_stages(pipeline) if isinstance(pipeline, str) else pipeline

    @property
    def n_mul(self) -> int:
        """Object slots per forward-pass item: the network's n_mul when joint, 1 when single."""
        return self.model.config.n_mul if self.mode == "joint" else 1

    def align(
        self, observation: Observation, detections: Sequence[Detection], scene_dir: str | Path | None = None
    ) -> AlignmentResult:
        """Align every detection of one image; `scene_dir` only names files in error messages.

        Boxes partly outside the image are clipped; boxes wholly outside are skipped with a logged
        warning and listed in `result.skipped`. Raises BundleError when the depth or normal map is
        missing and UnknownCadId (naming the detection and the cads.json) for a CAD not in the index.
        """
        timer = StageTimer(self.device)
        _require_depth_and_normals(observation, None if scene_dir is None else Path(scene_dir))
        for det in detections:
            if det.cad is None:
                raise ValueError(
                    f"detection {det.id} ({det.category}) names no CAD: have one chosen with "
                    "`inference.cad_choice.choose_cads` (`multisparc align --choose-cad K`)"
                )
            if det.cad not in self.cads:
                raise UnknownCadId(
                    self.cads.source, f"detection {det.id} asks for CAD {det.cad!r}, which this CAD index does not hold"
                )
        kept, skipped = clip_detections(observation, detections)
        stages = self.stages
        unmasked = [det.mask is None for det in kept]
        room_wanted = stages.room_depth is not None and bool(kept)
        mask_wanted = stages.depth_mask and any(unmasked)
        gravity = gravity_up(observation, self.initialisation) if room_wanted or mask_wanted else None
        # Only the camera's own up: one estimated from the normals is off by a degree or two, which tilts the
        # floor by several per cent of its depth at a few metres, and that would be read as the depth's error.
        room_read = room_wanted and gravity.source == "camera"
        if room_read:
            with timer.stage("room depth"):
                observation = room_corrected(observation, kept, gravity.up, stages.room_depth)
        if mask_wanted:
            with timer.stage("depth mask"):
                kept = with_depth_masks(observation, kept, gravity.up)
        with timer.stage("initialisation"):
            init = initial_poses(observation, kept, self.cads, self.initialisation)
            points, normals = self._cad_samples(kept)
        if stages.depth_mask:
            sources = [
                "depth mask" if was_unmasked and source == "mask" else source
                for was_unmasked, source in zip(unmasked, init.depth_source, strict=True)
            ]
            init = replace(init, depth_source=sources)
        if stages.start or stages.verify or stages.fit:  # the depth mask needs no observed points
            with timer.stage("observed points"):
                observed = observed_points(observation, kept, stages.icp, self.seed)
        if stages.start:
            with timer.stage("initialisation"):
                init = observed_start(init, observed, kept, self.cads, observation)
        with timer.stage("tokens"):
            box_tokens = self._box_tokens(observation, kept)
        source = ImagePixelSource(observation, kept)
        if not kept:
            trajectory = Pose.stack([init.poses] * (self.n_refine + 1))
            logits = torch.zeros(self.n_refine + 1, self.initialisation.n_hypotheses, 0)
        elif self.sequential:
            trajectory, logits = self._refine_each(observation, kept, box_tokens, points, normals, init.poses, timer)
        else:
            trajectory, logits = self._refine(source, box_tokens, points, normals, init.poses, timer)
        logits_np = logits.numpy().astype(np.float64)

        selection = logits_np[-1]
        geometric = final_source = None
        if kept and (stages.verify or stages.fit):
            with timer.stage("depth fit" if stages.fit else "verification"):
                depth_masked = [was_unmasked and stages.depth_mask for was_unmasked in unmasked]
                configs = detection_configs(observation, kept, stages)
                fits = score_and_fit(
                    observation, kept, observed, self.cads, trajectory.index(-1), logits_np[-1], init.gravity.up,
                    stages, depth_masked, configs,
                )
            geometric = fits.geometric
            if stages.fit:
                trajectory, logits_np, geometric, final_source = self._fitted_step(
                    observation, kept, observed, source, box_tokens, points, normals, init, trajectory, logits_np,
                    fits, depth_masked, configs, timer,
                )
            # Where the depth disagrees with every fit (the gate), the geometric score is noise: the learned decides.
            if fits.gate >= stages.fit_gate:
                selection = fuse(logits_np[-1], geometric, stages)

        if self.select == "score":
            chosen = np.argmax(selection, axis=0)
        else:
            chosen = np.zeros(len(kept), dtype=np.int64)
        final_scores = 1.0 / (1.0 + np.exp(-logits_np[-1, chosen, np.arange(len(kept))]))
        syms = [self.cads[det.cad].sym for det in kept]
        ran = ["room_depth"] if room_read else []
        ran += [name for name in ("start", "depth_mask", "verify", "fit", "depth_only") if getattr(stages, name)]
        if (stages.verify or stages.fit) and stages.icp.lookup == "grid":
            ran.append("grid_lookup")  # the fits' nearest CAD samples from a table (all but the "exact" pipeline)
        return AlignmentResult.from_hypotheses(
            list(kept), init, trajectory, logits_np, chosen, final_scores, syms, skipped, timer.to_dict(),
            ran, geometric, final_source,
        )

    def align_bundle(self, bundle: SceneBundle | str | Path) -> AlignmentResult:
        """Align a scene bundle, given in memory or as its directory (read with `read_bundle`)."""
        scene_dir = None
        if not isinstance(bundle, SceneBundle):
            scene_dir = Path(bundle)
            bundle = read_bundle(scene_dir)
        return self.align(bundle.observation, bundle.detections, scene_dir)

    def _fitted_step(
        self,
        observation: Observation,
        detections: list[Detection],
        observed: list[np.ndarray],
        source: PixelSource,
        box_tokens: Tensor,
        points: Tensor,
        normals: Tensor,
        init: Initialisation,
        trajectory: Pose,
        logits: np.ndarray,
        fits: HypothesisFits,
        depth_masked: list[bool],
        configs: list[IcpConfig],
        timer: StageTimer,
    ) -> tuple[Pose, np.ndarray, np.ndarray, np.ndarray]:
        """One more trajectory step: per hypothesis the best by fused score of the network's refined pose, its
        depth fit and (with `depth_only`) the depth-only fit from the same azimuth, the last two scored by
        the network in one pass; an image failing the fit gate keeps the network's poses. depth_masked (K,):
        whether each detection's mask was read from the depth (`stages.overlap_box`); configs (K,) each
        detection's ICP and score settings (`stages.detection_configs`).

        Returns the trajectory (S + 1, H, K), logits (S + 1, H, K), the final poses' geometric scores (H, K)
        and which option each is (H, K) int, an index into `FINAL_SOURCES`.
        """
        stages = self.stages
        last = trajectory.index(-1)
        options = [(logits[-1], fits.geometric, np.ones_like(fits.tried))]
        candidates = [last]
        if fits.gate >= stages.fit_gate:
            pool = [fits.fitted]
            if stages.depth_only:
                with timer.stage("depth-only fit"):
                    depth_only, depth_only_geometric, made = depth_only_candidates(
                        observation, detections, observed, self.cads, init.poses.R.numpy(), init.gravity.up, stages,
                        depth_masked, configs,
                    )
                pool.append(depth_only.to(dtype=last.t.dtype))
            pooled_logits = self._score(source, box_tokens, points, normals, Pose.cat(pool), timer)
            n_hyp = last.shape[0]
            options.append((pooled_logits[:n_hyp], fits.fitted_geometric, fits.tried))
            if stages.depth_only:
                options.append((pooled_logits[n_hyp:], depth_only_geometric, made))
            candidates += pool
        index, _ = best_of(options, stages)
        stacked = Pose.stack(candidates)  # (options, H, K)
        pick = torch.from_numpy(index)[None]
        final = Pose(
            torch.take_along_dim(stacked.R, pick[..., None, None], dim=0)[0],
            torch.take_along_dim(stacked.t, pick[..., None], dim=0)[0],
            torch.take_along_dim(stacked.s, pick[..., None], dim=0)[0],
        )
        final_logits = np.take_along_axis(np.stack([option[0] for option in options]), index[None], axis=0)[0]
        final_geometric = np.take_along_axis(np.stack([option[1] for option in options]), index[None], axis=0)[0]
        trajectory = Pose.cat([trajectory, Pose.stack([final])])
        return trajectory, np.concatenate([logits, final_logits[None]]), final_geometric, index

    def _cad_samples(self, detections: Sequence[Detection]) -> tuple[Tensor, Tensor]:
        """CAD-frame surface points and outward normals (K, n_cad, 3) float64 of each detection's CAD."""
        n_cad = self.input_config.n_cad
        samples = [self.cads.points(det.cad, n_cad) for det in detections]
        points = torch.tensor(np.array([p for p, _ in samples]).reshape(-1, n_cad, 3), dtype=torch.float64)
        normals = torch.tensor(np.array([n for _, n in samples]).reshape(-1, n_cad, 3), dtype=torch.float64)
        return points, normals

    def _box_tokens(self, observation: Observation, detections: Sequence[Detection]) -> Tensor:
        """(K, n_bbox, 13) box tokens, detection k's drawn by its own generator (module docstring).

        One source over all detections reads detection k's mask for box k; the detection_id channel
        is rewritten to the object's slot when items are collated.
        """
        if not detections:
            return torch.zeros(0, self.input_config.n_bbox, C_INPUT)
        return sample_box_tokens(
            ImagePixelSource(observation, list(detections)),
            np.stack([det.bbox for det in detections]),
            self.input_config,
            [np.random.default_rng([self.seed, det.id % 2**64]) for det in detections],
        )

    def _refine(
        self,
        source: PixelSource,
        box_tokens: Tensor,
        points: Tensor,
        normals: Tensor,
        poses: Pose,
        timer: StageTimer,
        n_mul: int | None = None,
        n_refine: int | None = None,
    ) -> tuple[Pose, Tensor]:
        """Run n_refine (default: the aligner's) updating passes and one scoring pass over poses (H, K) in one
        batch per pass.

        box_tokens (K, n_bbox, 13), points and normals (K, n_cad, 3) CAD frame of the source's K
        detections. Returns the trajectory (S, H, K) (initial poses first) and logits (S, H, K) float32,
        S = n_refine + 1, on the CPU.
        """
        # Images with fewer detections than slots get fewer slots: padding would cost without changing a thing.
        n_mul = min(self.n_mul if n_mul is None else n_mul, poses.shape[-1])
        n_refine = self.n_refine if n_refine is None else n_refine
        shape = poses.shape
        trajectory, logits = [poses], []
        for step in range(n_refine + 1):
            with timer.stage("tokens"):
                tokens, token_mask = step_tokens(box_tokens, source, points, normals, poses)
                batch = collate_image(tokens, token_mask, poses.R, n_mul).to(self.device)
            with timer.stage("network"), torch.inference_mode(), self._autocast():
                output = self.model(batch.tokens, batch.object_mask, batch.token_mask, batch.rotations)
                logits.append(uncollate(output.logit.float(), batch.object_mask).reshape(shape).cpu())
                update = uncollate(output.update.float(), batch.object_mask).reshape(*shape, -1).cpu()
            if step < n_refine:
                with timer.stage("pose update"):
                    poses = apply_update(poses, update.to(poses.t.dtype))
                trajectory.append(poses)
        return Pose.stack(trajectory), torch.stack(logits)

    def _score(
        self, source: PixelSource, box_tokens: Tensor, points: Tensor, normals: Tensor, poses: Pose, timer: StageTimer
    ) -> np.ndarray:
        """The network's logits (H, K) float64 for poses (H, K): one scoring pass, no update."""
        _, logits = self._refine(source, box_tokens, points, normals, poses, timer, n_refine=0)
        return logits[0].numpy().astype(np.float64)

    def _autocast(self) -> torch.autocast:
        """The network's precision (class docstring); float32 is autocast switched off."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def _refine_each(
        self,
        observation: Observation,
        detections: Sequence[Detection],
        box_tokens: Tensor,
        points: Tensor,
        normals: Tensor,
        poses: Pose,
        timer: StageTimer,
    ) -> tuple[Pose, Tensor]:
        """`_refine` for every (hypothesis, detection) pair alone; same outputs (S, H, K)."""
        n_hypotheses = poses.shape[0]
        per_detection = []
        for k, det in enumerate(detections):
            source = ImagePixelSource(observation, [det])
            runs = [
                self._refine(
                    source,
                    box_tokens[k : k + 1],
                    points[k : k + 1],
                    normals[k : k + 1],
                    poses.index((slice(h, h + 1), slice(k, k + 1))),
                    timer,
                    n_mul=1,
                )
                for h in range(n_hypotheses)
            ]
            per_detection.append(
                (Pose.cat([run[0] for run in runs], dim=1), torch.cat([run[1] for run in runs], dim=1))
            )
        trajectory = Pose.cat([run[0] for run in per_detection], dim=2)
        return trajectory, torch.cat([run[1] for run in per_detection], dim=2)


def _require_depth_and_normals(observation: Observation, scene_dir: Path | None) -> None:
    """BundleError naming the bundle file that is missing: the network needs depth and normals."""
    folder = scene_dir if scene_dir is not None else Path()
    if observation.depth is None:
        raise BundleError(
            folder / "depth.npy", "missing from the scene bundle: alignment needs a depth map (depth.npy or depth.png)"
        )
    if observation.normals is None:
        raise BundleError(folder / "normals.npy", "missing from the scene bundle: alignment needs a normal map")


def clip_detections(
    observation: Observation, detections: Sequence[Detection]
) -> tuple[list[Detection], list[SkippedDetection]]:
    """Detections with boxes clipped to the image, and those skipped because their box lies wholly outside."""
    width, height = observation.camera.width, observation.camera.height
    kept, skipped = [], []
    for det in detections:
        x1, y1, x2, y2 = (float(v) for v in det.bbox)
        if x2 < 0 or y2 < 0 or x1 > width - 1 or y1 > height - 1:
            reason = f"box {[x1, y1, x2, y2]} lies wholly outside the {width} x {height} image"
            log.warning("detection %s skipped: %s", det.id, reason)
            skipped.append(SkippedDetection(det.id, reason))
            continue
        clipped = clip_box(torch.tensor(det.bbox, dtype=torch.float64), width, height).numpy()
        kept.append(replace(det, bbox=clipped))
    return kept, skipped


def align(
    bundle: SceneBundle | str | Path,
    cads: CadIndex | str | Path,
    checkpoint: str | Path,
    device: torch.device | str = "cpu",
    **options,
) -> AlignmentResult:
    """Align one scene bundle (in memory or its directory) with the CAD index (or its cads.json) and a
    `model.pt`; `options` go to `Aligner` (n_refine, n_hypotheses, mode, sequential, seed, select, pipeline)."""
    cads = cads if isinstance(cads, CadIndex) else CadIndex.load(cads)
    model, input_config = load_checkpoint(checkpoint, device)
    return Aligner(model, input_config, cads, device=device, **options).align_bundle(bundle)
