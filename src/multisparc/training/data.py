"""Training data: synthetic images drawn on the fly, with their examples, and the fixed validation set.

Each `TrainingImage` holds a sampled `SyntheticScene`, its detections (with perception noise), the box
tokens (drawn once per image), CAD points for the pose tokens and the loss, ground-truth poses and the
initial poses of its examples (`multisparc.training.examples`). The pose tokens depend on the current
poses, so they are made in the training process at every refinement step, by ray casting the asked
pixels through `TrainingImage.pixel_source`. A scene pickles without any renderer state, so images
cross the data-loader boundary cheaply; every process keeps its own CAD index and ray caster
(`process_resources`), whose per-CAD structures are built once and reused.

Determinism: image i of step k on rank r comes from the seed (seed, TRAIN_STREAM, k, r, i) alone, so a
run resumed at step k sees exactly the batches an uninterrupted run would; validation image j comes
from (seed, VALIDATION_STREAM, j). Data-loader workers split the steps round robin (worker w of W
makes steps k0 + w, k0 + w + W, ...), which is the order in which the loader hands them out.

Detections: true detections carry their object's ground truth; spurious ones (noisy levels) have none
and take part as context only: they get initial poses like update examples (upright, random azimuth)
and are refined with the others, but carry no loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from multisparc.cad import CadIndex
from multisparc.categories import scale_range
from multisparc.geometry import Pose, pitch_roll_from_up, yaw_pitch_roll_to_matrix
from multisparc.inputs import InputConfig, sample_box_tokens
from multisparc.render import RayCaster
from multisparc.scenes import PerceptionNoise, RenderedPixelSource, SceneConfig, SceneSampler, SyntheticScene
from multisparc.training.config import noise_mixture
from multisparc.training.examples import (
    choose_classifier_examples,
    sample_classifier_poses,
    sample_update_poses,
    turn_hypotheses,
)

TRAIN_STREAM = 0
VALIDATION_STREAM = 1
#: Surface samples kept per CAD model; every image draws its token and loss points from them, so the
#: network sees fresh points while the samples stay cached on disk.
POINT_POOL = 4096


@dataclass
class TrainingImage:
    """One synthetic training image and its examples; K = number of detections.

    scene, noise: the world and the perception noise of its observation (`pixel_source` renders it).
    box_tokens (K, n_bbox, 13) float32: from `multisparc.inputs.sample_box_tokens`.
    cad_points, cad_normals (K, n_cad, 3) float32: CAD frame, metres / unit outward normals (pose tokens).
    loss_points (K, n_loss, 3) float32: CAD frame, metres (alignment loss).
    gt: ground-truth poses (K,) float32, camera frame (a placeholder where has_gt is False).
    has_gt (K,) bool: a true detection; sym: Scan2CAD tag per detection.
    update_poses: initial poses (K,) of update examples (Supp. B), drawn for every detection.
    is_classifier (K,) bool: the detection is a classifier example.
    follows_refinement (K,) bool: a classifier example that starts as a test-time hypothesis (its
        update pose turned by a multiple of 90 deg) and follows its own refinements
        (`training.examples`, hypothesis examples); the other classifier examples take region draws.
    classifier_poses: poses (S, K) for the region classifier examples, one draw per refinement step.
    """

    scene: SyntheticScene
    noise: PerceptionNoise
    box_tokens: torch.Tensor
    cad_points: torch.Tensor
    cad_normals: torch.Tensor
    loss_points: torch.Tensor
    gt: Pose
    has_gt: torch.Tensor
    sym: list[str]
    update_poses: Pose
    is_classifier: torch.Tensor
    follows_refinement: torch.Tensor
    classifier_poses: Pose

    @property
    def n_detections(self) -> int:
        return len(self.sym)

    def pixel_source(self, caster: RayCaster) -> RenderedPixelSource:
        """The noisy observation of the scene, ray cast on demand by `caster` (this process's)."""
        return RenderedPixelSource(self.scene, caster, self.noise)


def select_poses(mask: torch.Tensor, chosen: Pose, other: Pose) -> Pose:
    """Poses (n,): chosen where mask (n,) is True, other elsewhere."""
    mask = mask.to(chosen.t.device)
    return Pose(
        torch.where(mask[:, None, None], chosen.R, other.R),
        torch.where(mask[:, None], chosen.t, other.t),
        torch.where(mask[:, None], chosen.s, other.s),
    )


@lru_cache(maxsize=4)
def process_resources(cads_json: str) -> tuple[CadIndex, RayCaster]:
    """This process's CAD index and ray caster for a cads.json (built once per process and path)."""
    cads = CadIndex.load(Path(cads_json))
    return cads, RayCaster(cads)


def image_seed(seed: int, stream: int, *keys: int) -> np.random.SeedSequence:
    """The seed of one image: a function of the run seed, the stream and the image's keys only."""
    return np.random.SeedSequence([seed, stream, *keys])


class ImageBuilder:
    """Draws `TrainingImage`s: scene, noisy detections, box tokens, points, ground truth and examples.

    noise: a level, or {level: probability} from which each image draws its own (`noise_mixture`).
    refinement_steps: classifier poses are drawn for each step; classifier_ratio: share of classifier
    examples among the true detections; near_init_ratio: share of update examples that start near the
    truth as the test-time initialisation does (`sample_update_poses`); refined_classifier_ratio: share
    of the classifier examples that are hypothesis examples (`training.examples`).
    """

    def __init__(
        self,
        cads_json: str | Path,
        scenes: SceneConfig,
        noise: str | dict[str, float],
        inputs: InputConfig,
        n_loss: int,
        refinement_steps: int,
        classifier_ratio: float,
        near_init_ratio: float = 0.0,
        refined_classifier_ratio: float = 0.0,
    ) -> None:
        self.cads, self.caster = process_resources(str(cads_json))
        self.sampler = SceneSampler(self.cads, scenes, self.caster)
        mixture = noise_mixture(noise)
        self.noise_levels = [PerceptionNoise(level) for level in mixture]
        self.noise_weights = np.array(list(mixture.values()))
        self.inputs = inputs
        self.n_loss = n_loss
        self.refinement_steps = refinement_steps
        self.classifier_ratio = classifier_ratio
        self.near_init_ratio = near_init_ratio
        self.refined_classifier_ratio = refined_classifier_ratio

    def _points(self, cad_ids: list[str], n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, n, 3) points and normals drawn without replacement from each CAD's pool (with, if n > pool)."""
        points, normals = [], []
        for cad_id in cad_ids:
            pool_points, pool_normals = self.cads.points(cad_id, POINT_POOL)
            chosen = rng.choice(POINT_POOL, size=n, replace=n > POINT_POOL)
            points.append(pool_points[chosen])
            normals.append(pool_normals[chosen])
        return torch.from_numpy(np.stack(points)), torch.from_numpy(np.stack(normals))

    def build(self, seed: np.random.SeedSequence) -> TrainingImage:
        """The image of `seed` (the same seed gives the same image in any process)."""
        rng = np.random.default_rng(seed)
        # One level alone draws nothing, so that single-level runs keep their streams.
        noise = (
            self.noise_levels[rng.choice(len(self.noise_levels), p=self.noise_weights)]
            if len(self.noise_levels) > 1
            else self.noise_levels[0]
        )
        scene = self.sampler.sample(rng)
        source = RenderedPixelSource(scene, self.caster, noise)
        detections = source.detections
        boxes = np.array([det.bbox for det in detections], dtype=np.float64).reshape(-1, 4)
        box_tokens = sample_box_tokens(source, boxes, self.inputs, rng)
        cad_ids = [det.cad for det in detections]
        cad_points, cad_normals = self._points(cad_ids, self.inputs.n_cad, rng)
        loss_points, _ = self._points(cad_ids, self.n_loss, rng)

        truth = [scene.objects[det.object_index] if det.object_index is not None else None for det in detections]
        has_gt = np.array([obj is not None for obj in truth])
        gt_R, gt_t, gt_s = self._ground_truth(scene, truth, rng)
        gt = Pose(gt_R, gt_t, gt_s)
        low, high = zip(*(scale_range(det.category, self.cads.extent(det.cad)) for det in detections), strict=True)
        update_poses = sample_update_poses(
            gt_R,
            boxes,
            scene.camera.K,
            np.stack(low),
            np.stack(high),
            rng,
            gt_depth=gt_t[:, 2].double().numpy(),
            near_ratio=self.near_init_ratio,
        )
        is_classifier = choose_classifier_examples(len(detections), self.classifier_ratio, rng) & has_gt
        classifier_poses = Pose.stack([sample_classifier_poses(gt, rng) for _ in range(self.refinement_steps)])
        follows = np.zeros(len(detections), dtype=bool)
        if self.refined_classifier_ratio > 0.0:  # no draw otherwise: runs without keep their streams
            follows = is_classifier & (rng.random(len(detections)) < self.refined_classifier_ratio)
            update_poses = select_poses(torch.from_numpy(follows), turn_hypotheses(update_poses, rng), update_poses)
        return TrainingImage(
            scene=scene,
            noise=noise,
            box_tokens=box_tokens,
            cad_points=cad_points,
            cad_normals=cad_normals,
            loss_points=loss_points,
            gt=gt,
            has_gt=torch.from_numpy(has_gt),
            sym=[self.cads[cad_id].sym for cad_id in cad_ids],
            update_poses=update_poses,
            is_classifier=torch.from_numpy(is_classifier),
            follows_refinement=torch.from_numpy(follows),
            classifier_poses=classifier_poses,
        )

    @staticmethod
    def _ground_truth(scene: SyntheticScene, truth: list, rng: np.random.Generator):
        """R (K, 3, 3), t (K, 3), s (K, 3) float32 of the true detections; for spurious ones an upright
        rotation of random azimuth (what the update examples perturb), zero translation, unit scale."""
        pitch, roll = pitch_roll_from_up(torch.as_tensor(scene.camera.up, dtype=torch.float64))
        R, t, s = [], [], []
        for obj in truth:
            if obj is None:
                yaw = torch.tensor(rng.uniform(-math.pi, math.pi), dtype=torch.float64)
                R.append(yaw_pitch_roll_to_matrix(yaw, pitch, roll).numpy())
                t.append(np.zeros(3))
                s.append(np.ones(3))
            else:
                R.append(obj.R)
                t.append(obj.t)
                s.append(obj.s)
        return tuple(torch.as_tensor(np.stack(values), dtype=torch.float32) for values in (R, t, s))


class TrainingStream(IterableDataset):
    """Endless (step, images) pairs from `start_step` on: `images_per_step` images of this rank per step.

    Picklable (only settings); each data-loader worker builds its own `ImageBuilder` and takes every
    num_workers-th step (module docstring), so the loader yields the steps in order.
    """

    def __init__(self, builder_args: dict, seed: int, rank: int, images_per_step: int, start_step: int = 0) -> None:
        super().__init__()
        self.builder_args = builder_args
        self.seed = seed
        self.rank = rank
        self.images_per_step = images_per_step
        self.start_step = start_step

    def __iter__(self) -> Iterator[tuple[int, list[TrainingImage]]]:
        worker = get_worker_info()
        worker_id, n_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        builder = ImageBuilder(**self.builder_args)
        step = self.start_step + worker_id
        while True:
            seeds = [image_seed(self.seed, TRAIN_STREAM, step, self.rank, i) for i in range(self.images_per_step)]
            yield step, [builder.build(s) for s in seeds]
            step += n_workers


def _unbatched(item):
    """The data loader's collate function: items are whole steps already (module level: picklable)."""
    return item


def training_loader(stream: TrainingStream, num_workers: int) -> DataLoader:
    """A loader over `stream`; workers are spawned, not forked, so that no renderer state (embree, TBB
    threads) is shared with the parent."""
    return DataLoader(
        stream,
        batch_size=None,
        collate_fn=_unbatched,
        num_workers=num_workers,
        multiprocessing_context="spawn" if num_workers > 0 else None,
        persistent_workers=False,
        prefetch_factor=2 if num_workers > 0 else None,
        # Its own generator: creating the loader must not draw from the global torch RNG (exact resume).
        generator=torch.Generator(),
    )


def validation_images(builder: ImageBuilder, seed: int, count: int) -> list[TrainingImage]:
    """The fixed validation set: `count` images from the validation stream of `seed`."""
    return [builder.build(image_seed(seed, VALIDATION_STREAM, index)) for index in range(count)]
