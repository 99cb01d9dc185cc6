"""Run time per image: joint alignment (Multi-SPARC) against sequential single-object alignment (SPARC).

Protocol: the full test-time protocol of the paper, n_hypotheses = 4 initialisations x (3 refinements +
1 scoring pass) = 16 network evaluations per object, on one synthetic image of the config's size with
n objects. Two strategies of `multisparc.inference.Aligner`:
- "joint": mode "joint", the 4 hypotheses batched and the objects processed together in chunks of
  n_mul: 4 forward calls per image, each of 4 ceil(n / n_mul) items;
- "sequential": mode "single" with `sequential=True`, each (object, hypothesis) pair refined alone, as
  SPARC does: 16 n forward calls per image, each of one item holding one object.

Weights do not change the run time, so the network is randomly initialised from the config (seeded);
its zero-initialised decoder head gets small random weights so that poses move between passes and the
reprojected tokens change as with a trained network. The scene is drawn by `SceneSampler` with exactly
n objects, all visible, and rendered to a full observation with clean perception noise (noise changes
the values read, not the work); if no such scene can be drawn, the detections of a scene with fewer
objects are repeated under new ids (`SpeedRun.replicated` counts the copies).

Timing: one warm-up alignment, then `repeats` alignments; the total is the median wall-clock time of
`Aligner.align` and the stage split (token sampling, network, rest) is that of the repeat with the
median total, from the pipeline's `StageTimer` (which synchronises CUDA at every stage boundary).
FLOPs of the network are counted with `torch.utils.flop_counter.FlopCounterMode` around every forward
call of one further, untimed alignment; the achieved FLOP/s of the network stage is set against the
float32 matrix-multiply peak measured with `torch.matmul` on the same device and thread count.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from multisparc.cad import CadIndex
from multisparc.datasets.bundle import Detection, Observation
from multisparc.inference import Aligner
from multisparc.model import MultiSparcNet
from multisparc.render import RayCaster
from multisparc.scenes import (
    PerceptionNoise,
    SceneConfig,
    SceneSampler,
    SceneSamplingError,
    render_scene_frame,
    to_bundle,
)
from multisparc.training.config import TrainConfig

Strategy = Literal["joint", "sequential"]
STRATEGIES: tuple[Strategy, ...] = ("joint", "sequential")
#: Stages of the split: the pipeline's "tokens" and "network" timers, and everything else of `align`.
STAGES = ("tokens", "network", "rest")
#: The paper's test-time protocol: 4 initial azimuths, 3 refinements and 1 scoring pass each.
N_HYPOTHESES = 4
N_REFINE = 3


@dataclass(frozen=True)
class SpeedRun:
    """One measured (config, objects, strategy); times in seconds per image.

    seconds: median total over the repeats. stages: seconds per `STAGES` entry of the repeat with the
    median total (they sum to its total). network_calls: forward calls of the network per image;
    network_flops: FLOPs of all of them (FlopCounterMode, 2 per multiply-add). image: (width, height)
    pixels; replicated: detections that repeat another one (module docstring).
    """

    config: str
    n_objects: int
    strategy: Strategy
    seconds: float
    stages: dict[str, float]
    network_calls: int
    network_flops: int
    repeats: int
    image: tuple[int, int]
    replicated: int = 0

    @property
    def sampling_share(self) -> float:
        """Token sampling as a fraction of the total."""
        return self.stages["tokens"] / self.seconds

    @property
    def network_flop_rate(self) -> float:
        """Achieved FLOP/s of the network stage."""
        return self.network_flops / self.stages["network"]


@dataclass(frozen=True)
class SpeedReport:
    """All runs of one benchmark, with the machine facts they are read against.

    device: where the network ran; threads: torch's intra-op threads; cpu_cores: of the machine;
    peak_flop_rate: the measured float32 matmul FLOP/s (`matmul_peak`).
    """

    runs: list[SpeedRun]
    device: str
    threads: int
    cpu_cores: int
    peak_flop_rate: float

    def run(self, config: str, n_objects: int, strategy: Strategy) -> SpeedRun | None:
        """The run of that case, or None when it was not measured."""
        for run in self.runs:
            if (run.config, run.n_objects, run.strategy) == (config, n_objects, strategy):
                return run
        return None

    def speedup(self, config: str, n_objects: int) -> float | None:
        """Sequential over joint time (how many times faster joint is), None unless both were measured."""
        joint, sequential = self.run(config, n_objects, "joint"), self.run(config, n_objects, "sequential")
        if joint is None or sequential is None:
            return None
        return sequential.seconds / joint.seconds


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device | str = "cpu", size: int | None = None, repeats: int = 5) -> float:
    """The best float32 FLOP/s of `torch.matmul` of two (size, size) matrices on `device` with torch's
    current thread count (size default: 2048 on CPUs, 8192 on GPUs, large enough to reach the peak)."""
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 2048)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    torch.matmul(a, b)  # warm-up: kernel selection, thread pool start
    best = float("inf")
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def _sdpa_flops(
    query_shape: tuple[int, ...], key_shape: tuple[int, ...], value_shape: tuple[int, ...], *_args, **_kwargs
) -> int:
    """FLOPs of one attention (its two matrix products), for the CPU kernel torch's counter lacks."""
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


# torch's FLOP registry knows the CUDA attention kernels only; CPU attention would count as zero.
_CUSTOM_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


@contextmanager
def count_network(model: torch.nn.Module) -> Iterator[list[int]]:
    """Within the block, every forward call of `model` appends its FLOPs (FlopCounterMode) to the list
    yielded; the list's length is the number of calls."""
    flops: list[int] = []
    active: list[FlopCounterMode] = []

    def enter(_module: torch.nn.Module, _inputs: object) -> None:
        counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)
        counter.__enter__()
        active.append(counter)

    def leave(_module: torch.nn.Module, _inputs: object, _output: object) -> None:
        counter = active.pop()
        counter.__exit__(None, None, None)
        flops.append(int(counter.get_total_flops()))

    handles = [model.register_forward_pre_hook(enter), model.register_forward_hook(leave)]
    try:
        yield flops
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class BenchScene:
    """One image to align: its observation, n_objects detections and how many of them are copies."""

    observation: Observation
    detections: list[Detection]
    replicated: int


def benchmark_scene(
    cads: CadIndex, caster: RayCaster, scenes: SceneConfig, n_objects: int, seed: int = 0
) -> BenchScene:
    """A rendered synthetic image of `scenes`' size with n_objects detections (module docstring)."""
    if n_objects < 1:
        raise ValueError(f"the speed benchmark needs at least 1 object, got {n_objects}")
    noise = PerceptionNoise("clean")
    for count in range(n_objects, 0, -1):
        config = replace(scenes, objects=(count, count), min_detections=count)
        try:
            scene = SceneSampler(cads, config, caster=caster).sample(np.random.default_rng([seed, count]))
        except SceneSamplingError:
            continue
        bundle = to_bundle(scene, render_scene_frame(scene, caster, noise), name=f"speed_{n_objects}")
        found = bundle.detections[:n_objects]
        if found:
            break
    else:
        raise SceneSamplingError(f"no synthetic scene with a visible object in {scenes.max_attempts} attempts")
    # Copies get fresh ids: their box pixels are drawn from a generator seeded by the id.
    next_id = max(det.id for det in found) + 1
    copies = [replace(found[k % len(found)], id=next_id + k) for k in range(n_objects - len(found))]
    return BenchScene(bundle.observation, found + copies, len(copies))


def random_network(config: TrainConfig, seed: int = 0) -> MultiSparcNet:
    """A randomly initialised network of the config, its decoder head small and random (module docstring)."""
    torch.manual_seed(seed)
    model = MultiSparcNet(config.model)
    with torch.no_grad():
        model.decoder.out.weight.normal_(0.0, 0.01)
    return model


def _aligner(
    model: MultiSparcNet, config: TrainConfig, cads: CadIndex, strategy: Strategy, device: str, precision: str
) -> Aligner:
    """The paper's test-time protocol: 3 refinements + 1 scoring pass of 4 hypotheses."""
    mode = "joint" if strategy == "joint" else "single"
    return Aligner(
        model,
        config.inputs,
        cads,
        device=device,
        n_refine=N_REFINE,
        n_hypotheses=N_HYPOTHESES,
        mode=mode,
        sequential=strategy == "sequential",
        precision=precision,
        pipeline="paper",
    )


def measure_run(
    name: str,
    config: TrainConfig,
    model: MultiSparcNet,
    cads: CadIndex,
    scene: BenchScene,
    strategy: Strategy,
    repeats: int,
    device: str = "cpu",
    precision: str = "float32",
) -> SpeedRun:
    """Time one strategy on one image (module docstring), then count its network calls and FLOPs."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    aligner = _aligner(model, config, cads, strategy, device, precision)
    observation, detections = scene.observation, scene.detections
    aligner.align(observation, detections)  # warm-up: CAD samples, allocator, kernels
    totals, splits = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        timings = aligner.align(observation, detections).timings
        total = time.perf_counter() - start
        tokens, network = timings.get("tokens", 0.0), timings.get("network", 0.0)
        totals.append(total)
        splits.append({"tokens": tokens, "network": network, "rest": max(total - tokens - network, 0.0)})
    median = statistics.median_low(totals)
    split = splits[totals.index(median)]
    with count_network(aligner.model) as flops:
        aligner.align(observation, detections)
    return SpeedRun(
        config=name,
        n_objects=len(detections),
        strategy=strategy,
        seconds=statistics.median(totals),
        stages=split,
        network_calls=len(flops),
        network_flops=sum(flops),
        repeats=repeats,
        image=(observation.camera.width, observation.camera.height),
        replicated=scene.replicated,
    )


def measure_speed(
    configs: Sequence[tuple[str, TrainConfig]],
    objects: Sequence[int],
    cads: CadIndex,
    repeats: int = 5,
    device: str = "cpu",
    seed: int = 0,
    strategies: Sequence[Strategy] = STRATEGIES,
    progress: bool = False,
    peak_size: int | None = None,
    precisions: Sequence[str] = ("float32",),
) -> SpeedReport:
    """Every (config, objects, strategy) run on this machine, plus the measured matmul peak.

    configs: (name, config) pairs, the name as reported; objects: object counts per image;
    peak_size: of the peak's matrices (`matmul_peak`); progress: print each run as it ends;
    precisions: of the network (`Aligner`); a bfloat16 run is reported as config "<name> bf16".
    """
    caster = RayCaster(cads)
    runs = []
    for name, config in configs:
        model = random_network(config, seed)
        for n_objects in objects:
            scene = benchmark_scene(cads, caster, config.scenes, n_objects, seed)
            for precision in precisions:
                label = name if precision == "float32" else f"{name} bf16"
                for strategy in strategies:
                    run = measure_run(label, config, model, cads, scene, strategy, repeats, device, precision)
                    runs.append(run)
                    if progress:
                        print(format_run(run), flush=True)
    return SpeedReport(
        runs=runs,
        device=str(torch.device(device)),
        threads=torch.get_num_threads(),
        cpu_cores=os.cpu_count() or 1,
        peak_flop_rate=matmul_peak(device, peak_size),
    )


def format_run(run: SpeedRun) -> str:
    """One line of console output."""
    return (
        f"{run.config:8s} {run.n_objects:3d} objects {run.strategy:10s} {1000 * run.seconds:9.1f} ms/image  "
        f"tokens {1000 * run.stages['tokens']:8.1f} ms ({100 * run.sampling_share:4.1f} %)  "
        f"network {1000 * run.stages['network']:8.1f} ms  rest {1000 * run.stages['rest']:7.1f} ms  "
        f"{run.network_calls:4d} calls  {run.network_flop_rate / 1e9:7.1f} GFLOP/s"
    )
