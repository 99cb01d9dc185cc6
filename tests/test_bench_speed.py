"""Tests of the speed benchmark (`multisparc bench speed`): its structure and invariants, never its speed.

The tiny config with 1 and 2 objects and one repeat: timings are positive and the stage split adds up
to the total; the network is called once per pass when joint and once per (object, hypothesis, pass)
when sequential; the FLOPs counted by FlopCounterMode equal the network's own analytic count, and
joint and sequential differ exactly by the self-attention of objects attending to each other.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from multisparc.benchmarks.report import update_markdown
from multisparc.benchmarks.speed import (
    N_HYPOTHESES,
    N_REFINE,
    STAGES,
    SpeedReport,
    SpeedRun,
    benchmark_scene,
    measure_speed,
)
from multisparc.benchmarks.speed_report import section_name, speed_section, targets
from multisparc.cad import CadIndex
from multisparc.cad.procedural import build_library
from multisparc.cli import build_parser
from multisparc.model import MultiSparcNet
from multisparc.render import RayCaster
from multisparc.scenes import SceneSampler, SceneSamplingError
from multisparc.training.config import load_config

# End to end (CLI runs, rendered scenes, trained networks): left out of the fast subset.
pytestmark = pytest.mark.slow

PASSES = N_REFINE + 1
COMMAND = ["multisparc", "bench", "speed", "--configs", "tiny", "--objects", "1", "2", "--repeats", "1"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread, and do not stall when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> SpeedReport:
    cads = CadIndex.load(build_library(tmp_path_factory.mktemp("cads"), per_class=1, seed=0))
    return measure_speed([("tiny", load_config("tiny"))], [1, 2], cads, repeats=1, peak_size=128)


def _run(report: SpeedReport, n_objects: int, strategy: str) -> SpeedRun:
    run = report.run("tiny", n_objects, strategy)
    assert run is not None
    return run


def test_every_run_has_positive_timings_that_add_up(report: SpeedReport) -> None:
    assert [(run.n_objects, run.strategy) for run in report.runs] == [
        (1, "joint"),
        (1, "sequential"),
        (2, "joint"),
        (2, "sequential"),
    ]
    for run in report.runs:
        assert run.seconds > 0 and run.repeats == 1 and run.image == (160, 120)
        assert set(run.stages) == set(STAGES)
        assert run.stages["tokens"] > 0 and run.stages["network"] > 0 and run.stages["rest"] >= 0
        assert sum(run.stages.values()) <= run.seconds * (1 + 1e-9)
        assert 0 < run.sampling_share < 1
        assert run.network_flops > 0 and run.network_flop_rate > 0
        assert run.replicated == 0
    assert report.peak_flop_rate > 0 and report.threads == 1
    assert report.speedup("tiny", 2) > 0 and report.speedup("tiny", 5) is None


def test_sequential_calls_the_network_once_per_object_hypothesis_and_pass(report: SpeedReport) -> None:
    for n_objects in (1, 2):
        assert _run(report, n_objects, "joint").network_calls == PASSES
        assert _run(report, n_objects, "sequential").network_calls == n_objects * N_HYPOTHESES * PASSES


def test_flops_match_the_analytic_count_and_differ_by_the_joint_attention(report: SpeedReport) -> None:
    config = load_config("tiny")
    n_input = config.inputs.n_bbox + 2 * config.inputs.n_cad
    for n_objects in (1, 2):
        # A joint call holds the hypotheses as items of as many slots as there are objects.
        model = MultiSparcNet(replace(config.model, n_mul=n_objects))
        assert _run(report, n_objects, "joint").network_flops == PASSES * model.flops_per_forward(N_HYPOTHESES, n_input)
    one, two = _run(report, 1, "sequential").network_flops, _run(report, 2, "sequential").network_flops
    assert two == 2 * one
    assert _run(report, 1, "joint").network_flops == one
    # Self-attention over M objects' latents instead of each object's own: 4 h d L^2 (M^2 - M) FLOPs
    # more per item and layer (the query-key and the weighted-value products).
    m, cfg = 2, config.model
    extra = 4 * cfg.n_heads * cfg.dim_head * cfg.n_latent**2 * (m * m - m) * cfg.n_blocks * cfg.n_self_attn
    assert _run(report, 2, "joint").network_flops - two == PASSES * N_HYPOTHESES * extra


def test_markdown_section_holds_the_command_table_and_targets(
    report: SpeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", COMMAND)
    text = speed_section(report)
    assert text.startswith("<!-- bench:speed:start -->") and text.rstrip().endswith("<!-- bench:speed:end -->")
    assert "Command: `multisparc bench speed --configs tiny --objects 1 2 --repeats 1`" in text
    assert "| tiny | 2 | sequential |" in text and "Machine: " in text
    assert "| target | measured | verdict |" in text and "not measured" in text
    assert section_name(report) == "speed"
    path = tmp_path / "BENCHMARKS.md"
    update_markdown(path, "speed", text)
    assert "multisparc bench speed --configs tiny" in path.read_text()


def test_scenes_with_too_many_objects_repeat_the_detections_of_fewer(tmp_path: Path, monkeypatch) -> None:
    cads = CadIndex.load(build_library(tmp_path, per_class=1, seed=0))
    sample = SceneSampler.sample

    def at_most_two(self: SceneSampler, rng):
        if self.config.objects[0] > 2:
            raise SceneSamplingError("too many")
        return sample(self, rng)

    monkeypatch.setattr(SceneSampler, "sample", at_most_two)
    scene = benchmark_scene(cads, RayCaster(cads), load_config("tiny").scenes, 5)
    assert len(scene.detections) == 5 and scene.replicated == 3
    assert len({det.id for det in scene.detections}) == 5
    for k in range(2, 5):
        np.testing.assert_array_equal(scene.detections[k].bbox, scene.detections[k % 2].bbox)


def _fake_run(config: str, strategy: str, seconds: float, tokens: float) -> SpeedRun:
    stages = {"tokens": tokens, "network": seconds - tokens, "rest": 0.0}
    return SpeedRun(config, 5, strategy, seconds, stages, 4, 10**9, 1, (480, 360))


def test_targets_are_judged_from_the_measurements() -> None:
    runs = [
        _fake_run("paper", "joint", 1.5, 0.1),
        _fake_run("paper", "sequential", 6.0, 0.3),
        _fake_run("cpu", "joint", 0.4, 0.1),
    ]
    cpu = targets(SpeedReport(runs, "cpu", 2, 2, 1e11))
    # Times of paper and cpu, then the sampling share of each config: 6.7 % and 25 %.
    assert [t.verdict for t in cpu] == ["met", "not met", "met", "not met"]
    assert cpu[0].measured == "1.50 s" and cpu[1].measured == "400 ms" and cpu[3].measured == "25.0 %"
    gpu_report = SpeedReport(runs, "cuda", 2, 16, 1e13)
    assert section_name(gpu_report) == "speed-cuda"
    gpu = targets(gpu_report)
    assert [t.verdict for t in gpu] == ["not met", "met", "not met", "not met"]
    assert gpu[-1].measured == "4.00x"


def test_command_line_defaults() -> None:
    args = build_parser().parse_args(["bench", "speed"])
    assert args.objects == [1, 5, 10] and args.configs == ["paper", "cpu"] and args.device == "cpu"
    assert args.repeats >= 1 and args.markdown is None
