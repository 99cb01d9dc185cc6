"""Time per image of each pipeline, split by stage: the shipped network on one image with n objects.

The image is the speed benchmark's (`speed.benchmark_scene`: a synthetic scene of the network's config
size with exactly n visible objects, clean noise, from the given CAD library). Each pipeline (`paper`,
`full`, or any name of `inference.stages.PIPELINES`) aligns it once to warm up and then `repeats` times;
the total is the median wall-clock time of `Aligner.align` and the stages (the pipeline's `StageTimer`:
initialisation, tokens, network, pose update, depth mask, observed points, depth fit, depth-only fit) are
those of the repeat with the median total.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from multisparc.benchmarks.speed import BenchScene, benchmark_scene
from multisparc.cad import CadIndex
from multisparc.inference import Aligner
from multisparc.inputs import InputConfig
from multisparc.model import MultiSparcNet
from multisparc.render import RayCaster
from multisparc.scenes import SceneConfig


@dataclass(frozen=True)
class StageTimes:
    """One pipeline's time on the image: total ms (median of the repeats) and ms per stage of that repeat."""

    pipeline: str
    total_ms: float
    stage_ms: dict[str, float]


def time_pipeline(aligner: Aligner, scene: BenchScene, repeats: int) -> tuple[float, dict[str, float]]:
    """(median total ms, stage ms of the median repeat) of `repeats` alignments after one warm-up."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    aligner.align(scene.observation, scene.detections)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = aligner.align(scene.observation, scene.detections)
        runs.append((1000.0 * (time.perf_counter() - start), result.timings))
    median = statistics.median_low([total for total, _ in runs])
    timings = next(stages for total, stages in runs if total == median)
    return median, {name: 1000.0 * value for name, value in timings.items() if name != "total"}


def measure_stage_times(
    model: MultiSparcNet,
    inputs: InputConfig,
    cads: CadIndex,
    pipelines: list[str],
    n_objects: int,
    repeats: int,
    seed: int = 0,
) -> tuple[BenchScene, list[StageTimes]]:
    """The image of n_objects and each pipeline's times on it (module docstring)."""
    scene = benchmark_scene(cads, RayCaster(cads), SceneConfig(), n_objects, seed)
    times = []
    for name in pipelines:
        total, stages = time_pipeline(Aligner(model, inputs, cads, pipeline=name, seed=seed), scene, repeats)
        times.append(StageTimes(name, total, stages))
    return scene, times
