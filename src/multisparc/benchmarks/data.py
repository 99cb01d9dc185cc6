"""Throughput of synthetic training examples: sparse rendering against full frames, 1 and 2 processes.

One training example is what the trainer needs of one image: a sampled scene (placement and
visibility), its noisy detections, the box tokens of every detection and the reprojected and CAD tokens
of one pose per detection. The sparse path ray casts only the pixels the tokens read; the full path
renders the whole frame with the same noise and reads the tokens from it.

`count_rays` says why the two differ as they do: the rays each path hands the ray caster per example
(camera rays of the renders, the visibility rays of scene sampling and the shadow rays), counted on
the same scenes outside the timed runs. Perception noise that reads depth, normals and masks at
displaced pixels multiplies the sparse path's camera rays (each read is a ray), while a full frame
casts every pixel once whatever the noise.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from multisparc.cad import CadIndex
from multisparc.datasets.pixels import ImagePixelSource, PixelSource
from multisparc.geometry import Pose
from multisparc.inputs import InputConfig, sample_box_tokens, step_tokens
from multisparc.render import RayCaster
from multisparc.scenes import (
    PerceptionNoise,
    RenderedPixelSource,
    SceneConfig,
    SceneSampler,
    render_scene_frame,
    to_bundle,
)


@dataclass(frozen=True)
class DataBenchmarkCase:
    """One measured configuration. pixel_share: the share of scene sampling's visibility samples that
    is used (`with_pixel_share`)."""

    cads_json: str
    objects: int
    inputs: InputConfig
    noise: str
    full_frame: bool
    seed: int
    pixel_share: float = 1.0

    def with_pixel_share(self, share: float) -> DataBenchmarkCase:
        """The case with every per-pixel count times `share`: box pixels, CAD points and visibility
        samples. The time that remains as the share falls is the work that does not scale with the
        pixels (per call, per object, per scene)."""
        inputs = replace(
            self.inputs, n_bbox=_share_of(self.inputs.n_bbox, share), n_cad=_share_of(self.inputs.n_cad, share)
        )
        return replace(self, inputs=inputs, pixel_share=self.pixel_share * share)


def _share_of(count: int, share: float) -> int:
    """`share` of a per-pixel count, rounded, at least 1."""
    return max(1, round(count * share))


def _poses_and_points(scene, detections, cads: CadIndex, n_cad: int) -> tuple[Pose, np.ndarray, np.ndarray]:
    """Ground-truth poses (K,) of the detections (spurious ones: a pose 3 m ahead) and their CAD points."""
    R, t, s, points, normals = [], [], [], [], []
    for det in detections:
        if det.object_index is not None:
            obj = scene.objects[det.object_index]
            R.append(obj.R), t.append(obj.t), s.append(obj.s)
        else:
            R.append(np.eye(3)), t.append(np.array([0.0, 0.0, 3.0])), s.append(np.ones(3))
        p, n = cads.points(det.cad, n_cad)
        points.append(p), normals.append(n)
    pose = Pose.from_numpy(np.stack(R), np.stack(t), np.stack(s)).to(torch.float32)
    return pose, np.stack(points), np.stack(normals)


#: The stages of one example, timed in `measure`: scene sampling (placement and visibility); the
#: observation and box tokens (sparse: detections and the box pixels' render; full frame: the frame,
#: its bundle and the box tokens read from it); the pose tokens of one pose per detection.
STAGES = ("scene", "box tokens", "pose tokens")
#: The pixel share of the benchmark's reduced row (`DataBenchmarkCase.with_pixel_share`): what an
#: example costs with a tenth of the pixels is mostly what it costs whatever the pixels.
FEW_PIXELS = 0.1
#: The rays `count_rays` tells apart: camera rays of renders, instance-only rays of visibility, shadow rays.
RAY_KINDS = ("render", "visibility", "shadow")


def _scene_config(case: DataBenchmarkCase) -> SceneConfig:
    """Scenes of exactly `case.objects` objects, with the case's share of the visibility samples."""
    default = SceneConfig()
    return SceneConfig(
        objects=(case.objects, case.objects),
        visibility_points=_share_of(default.visibility_points, case.pixel_share),
        visibility_fraction_points=_share_of(default.visibility_fraction_points, case.pixel_share),
    )


def _example(
    case: DataBenchmarkCase,
    sampler: SceneSampler,
    caster: RayCaster,
    cads: CadIndex,
    index: int,
    seconds: np.ndarray | None = None,
) -> int:
    """Build one training example; returns its number of tokens (so the work cannot be skipped) and
    adds the time of each of the STAGES to `seconds` (3,) if given."""
    start = time.perf_counter()
    rng = np.random.default_rng([case.seed, index])
    scene = sampler.sample(rng)
    sampled = time.perf_counter()
    noise = PerceptionNoise(case.noise)
    source: PixelSource
    if case.full_frame:
        frame = render_scene_frame(scene, caster, noise)
        bundle = to_bundle(scene, frame, name="bench")
        source, detections = ImagePixelSource(bundle.observation, bundle.detections), frame.detections
    else:
        rendered = RenderedPixelSource(scene, caster, noise)
        source, detections = rendered, rendered.detections
    count = 0
    boxed = time.perf_counter()
    if detections:
        boxes = np.stack([det.bbox for det in detections])
        box_tokens = sample_box_tokens(source, boxes, case.inputs, rng)
        boxed = time.perf_counter()
        poses, points, normals = _poses_and_points(scene, detections, cads, case.inputs.n_cad)
        tokens, _ = step_tokens(box_tokens, source, points, normals, poses)
        count = int(tokens.shape[0] * tokens.shape[1])
    if seconds is not None:
        seconds += (sampled - start, boxed - sampled, time.perf_counter() - boxed)
    return count


class _CountingRayCaster(RayCaster):
    """A `RayCaster` that counts the rays it is handed: camera rays of renders (`cast_unit`), the
    instance-only rays of visibility (`instances`) and shadow rays (`occluded`)."""

    def __init__(self, meshes: CadIndex) -> None:
        super().__init__(meshes)
        self.rays = dict.fromkeys(RAY_KINDS, 0)

    def cast_unit(self, objects, room, origins, directions, albedo_rows=None):
        self.rays["render"] += directions.shape[1]
        return super().cast_unit(objects, room, origins, directions, albedo_rows)

    def instances(self, objects, room, origins, directions):
        self.rays["visibility"] += directions.shape[1]
        return super().instances(objects, room, origins, directions)

    def occluded(self, objects, origins, directions):
        self.rays["shadow"] += len(origins)
        return super().occluded(objects, origins, directions)


def count_rays(case: DataBenchmarkCase, n_scenes: int) -> dict[str, float]:
    """Mean rays per example over the first `n_scenes` examples of `case`, by kind (RAY_KINDS)."""
    cads = CadIndex.load(case.cads_json)
    caster = _CountingRayCaster(cads)
    sampler = SceneSampler(cads, _scene_config(case), caster=caster)
    for index in range(n_scenes):
        _example(case, sampler, caster, cads, index)
    return {kind: count / n_scenes for kind, count in caster.rays.items()}


_WORKER: dict[str, object] = {}


def _init_worker(case: DataBenchmarkCase) -> None:
    """Load the CAD library and warm every per-CAD cache (embree structure, surface samples), as a
    training process has after its first few hundred scenes: the measurement is the steady state. One
    thread per process for torch and BLAS, so that processes scale and do not fight over cores."""
    from threadpoolctl import threadpool_limits  # the `bench` extra: only this benchmark needs it

    torch.set_num_threads(1)
    threadpool_limits(1)
    cads = CadIndex.load(case.cads_json)
    caster = RayCaster(cads)
    config = _scene_config(case)
    for cad_id in cads:
        caster.geometry(cad_id)
        for count in (config.visibility_points, case.inputs.n_cad):
            cads.points(cad_id, count)
    _WORKER.update(case=case, cads=cads, caster=caster, sampler=SceneSampler(cads, config, caster=caster))
    _example(case, _WORKER["sampler"], caster, cads, 10**9)
    # The long-lived objects (meshes, caches) need no more garbage collection passes.
    gc.freeze()


def _run_chunk(indices: list[int]) -> np.ndarray:
    """Seconds (3,) spent in each of the STAGES over the examples `indices`."""
    w = _WORKER
    seconds = np.zeros(len(STAGES))
    for index in indices:
        _example(w["case"], w["sampler"], w["caster"], w["cads"], index, seconds)
    return seconds


def _join(barrier: Any) -> None:
    """Block until every worker has called this: all of them are initialised and idle."""
    barrier.wait()


@dataclass(frozen=True)
class Throughput:
    """examples_per_second over the whole run (wall clock); stage_ms: each of the STAGES in
    milliseconds per example, within one process."""

    examples_per_second: float
    stage_ms: dict[str, float]


def measure(case: DataBenchmarkCase, n_scenes: int, workers: int, repeats: int = 1) -> Throughput:
    """Training examples per second over `n_scenes` scenes with `workers` processes (1 = this process):
    the fastest of `repeats` runs over the same scenes, with that run's stage times."""
    indices = list(range(n_scenes))
    runs: list[tuple[float, np.ndarray]] = []
    if workers == 1:
        _init_worker(case)
        for _ in range(repeats):
            start = time.perf_counter()
            seconds = _run_chunk(indices)
            runs.append((time.perf_counter() - start, seconds))
    else:
        chunks = [indices[w::workers] for w in range(workers)]
        with (
            multiprocessing.Manager() as manager,
            ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(case,)) as pool,
        ):
            # One barrier task per worker: the clock starts once every worker has finished its warm-up.
            list(pool.map(_join, [manager.Barrier(workers)] * workers))
            for _ in range(repeats):
                start = time.perf_counter()
                seconds = sum(pool.map(_run_chunk, chunks))
                runs.append((time.perf_counter() - start, seconds))
    elapsed, seconds = min(runs, key=lambda run: run[0])
    stage_ms = {stage: 1000.0 * float(value) / n_scenes for stage, value in zip(STAGES, seconds, strict=True)}
    return Throughput(n_scenes / elapsed, stage_ms)
