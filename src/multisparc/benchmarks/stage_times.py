"""Time per image of each pipeline, split by stage: the shipped network on one image with n objects.

The image is the speed benchmark's (`speed.benchmark_scene`: a synthetic scene of the network's config
size with exactly n visible objects, clean noise, from the given CAD library). Each pipeline (`paper`,
`full`, or any name of `inference.stages.PIPELINES`) aligns it once to warm up and then `repeats` times,
the pipelines taking turns (one alignment each per round), so that a machine whose speed drifts during the
run slows every pipeline alike; the total is the median wall-clock time of `Aligner.align` and the stages
(the pipeline's `StageTimer`: initialisation, tokens, network, pose update, depth mask, observed points,
depth fit, depth-only fit) are those of the repeat with the median total.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
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


def time_pipelines(
    aligners: Sequence[Aligner], scene: BenchScene, repeats: int
) -> list[tuple[float, dict[str, float]]]:
    """Per aligner (median total ms, stage ms of the median repeat) of `repeats` alignments after one
    warm-up each, the aligners taking turns (module docstring)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for aligner in aligners:
        aligner.align(scene.observation, scene.detections)
    runs: list[list[tuple[float, dict[str, float]]]] = [[] for _ in aligners]
    for _ in range(repeats):
        for aligner, timed in zip(aligners, runs, strict=True):
            start = time.perf_counter()
            result = aligner.align(scene.observation, scene.detections)
            timed.append((1000.0 * (time.perf_counter() - start), result.timings))
    medians = []
    for timed in runs:
        median = statistics.median_low([total for total, _ in timed])
        timings = next(stages for total, stages in timed if total == median)
        medians.append((median, {name: 1000.0 * value for name, value in timings.items() if name != "total"}))
    return medians


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
    aligners = [Aligner(model, inputs, cads, pipeline=name, seed=seed) for name in pipelines]
    timed = time_pipelines(aligners, scene, repeats)
    return scene, [StageTimes(name, total, stages) for name, (total, stages) in zip(pipelines, timed, strict=True)]
