"""The data benchmark's ray counts: what each path casts per example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from multisparc.benchmarks.data import FEW_PIXELS, DataBenchmarkCase, count_rays
from multisparc.cad.procedural import build_library
from multisparc.inputs import InputConfig

# End to end (CLI runs, rendered scenes, trained networks): left out of the fast subset.
pytestmark = pytest.mark.slow

PAPER = InputConfig.paper()


@pytest.fixture(scope="module")
def cads_json(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_library(Path(tmp_path_factory.mktemp("cads")), per_class=1, seed=0))


def _case(cads_json: str, noise: str, full_frame: bool) -> DataBenchmarkCase:
    return DataBenchmarkCase(cads_json, 4, PAPER, noise, full_frame, seed=0)


def test_full_frames_cast_every_pixel_and_sparse_examples_only_what_they_read(cads_json: str) -> None:
    full = count_rays(_case(cads_json, "clean", True), 3)
    sparse = count_rays(_case(cads_json, "clean", False), 3)
    realistic = count_rays(_case(cads_json, "realistic", False), 3)
    assert full["render"] == 480 * 360
    # Clean: one ray per distinct pixel read, at most the 2000 box pixels + 500 CAD points per object.
    assert 0 < sparse["render"] <= 4 * (PAPER.n_bbox + PAPER.n_cad)
    # Realistic noise also reads depth, normals and masks at displaced pixels: more rays per pixel.
    assert realistic["render"] > 1.5 * sparse["render"]
    # The same scenes are sampled whatever the rendering; shadows follow the shaded pixels.
    assert full["visibility"] == sparse["visibility"] > 0
    assert full["shadow"] > 10 * sparse["shadow"] > 0


def test_a_pixel_share_scales_what_an_example_reads(cads_json: str) -> None:
    full = _case(cads_json, "clean", False)
    few = full.with_pixel_share(FEW_PIXELS)
    assert (few.inputs.n_bbox, few.inputs.n_cad) == (200, 50)
    rays, few_rays = count_rays(full, 3), count_rays(few, 3)
    assert 0 < few_rays["render"] <= 4 * (200 + 50) < rays["render"]
    # A tenth of the visibility samples: far fewer visibility rays (their edge bands keep some).
    assert 0 < few_rays["visibility"] < 0.5 * rays["visibility"]


def test_bench_data_command_writes_its_section(cads_json: str, tmp_path: Path) -> None:
    """End to end from the command line (its own process: the benchmark pins torch to one thread)."""
    markdown = tmp_path / "BENCHMARKS.md"
    command = [str(Path(sys.executable).with_name("multisparc")), "bench", "data", "--scenes", "4"]
    command += ["--full-scenes", "2", "--count-scenes", "2", "--noise", "clean", "--cads", cads_json]
    command += ["--markdown", str(markdown)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    table = [line.split("|")[1:-1] for line in markdown.read_text().splitlines() if line.startswith("| clean")]
    assert [(row[1].strip(), row[2].strip()) for row in table] == [
        ("sparse", "1"), ("sparse", "2"), ("sparse, 10% of the pixels", "1"), ("full frame", "1"), ("full frame", "2")
    ]
    for row in table:
        rate, ms, *stages = (float(cell) for cell in row[4:9])
        assert rate > 0 and ms == pytest.approx(1000.0 / rate, rel=0.01)
        assert all(stage > 0 for stage in stages)
    text = markdown.read_text()
    assert "Sparse over full-frame speed-up: clean:" in text
    assert "with 10% of the pixels" in text
