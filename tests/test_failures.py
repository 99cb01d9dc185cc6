"""Tests of multisparc.benchmarks.failures and `multisparc bench failures`: predictions with known errors
sorted into their kinds."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from multisparc.benchmarks.failures import KINDS, failure_kind, failure_tables, method_outcomes
from multisparc.cli import main
from multisparc.datasets.bundle import ObjectPose, write_poses


def turned(pose: ObjectPose, degrees: float) -> ObjectPose:
    """The pose turned about its CAD's up axis (y) by `degrees`: q times the quaternion (w, x, y, z) of that turn."""
    half = math.radians(degrees) / 2
    w, x, y, z = pose.q
    c, s = math.cos(half), math.sin(half)
    return replace(pose, q=np.array([w * c - y * s, x * c + z * s, y * c + w * s, z * c - x * s]))


def truth(object_id: int, sym: str = "none") -> ObjectPose:
    q = np.array([math.cos(0.3), 0.0, math.sin(0.3), 0.0])
    return ObjectPose(object_id, "cabinet", "cab0", np.array([0.2, 0.1, 3.0]), q, np.array([1.0, 0.8, 0.5]), sym)


def write_results(folder: Path) -> Path:
    """An evaluate output folder with one scene: eight objects, each predicted with a known error, and one
    spurious prediction."""
    scene = folder / "sets" / "scene_00000"
    scene.mkdir(parents=True)
    objects = [truth(i, "2" if i == 3 else "none") for i in range(1, 9)]
    write_poses(scene / "gt.json", objects)
    shifted = np.array([0.3, 0.0, 0.0])
    predictions = [
        objects[0],  # exact
        turned(objects[1], 178.0),  # front for back
        turned(objects[2], 180.0),  # the same turn of a model symmetric under it: aligned
        turned(objects[3], 92.0),
        turned(objects[4], 40.0),
        replace(objects[5], t=objects[5].t + shifted),
        replace(objects[6], s=objects[6].s * 1.3),
        replace(objects[7], t=objects[7].t + shifted, s=objects[7].s * 1.3),
        replace(objects[0], id=99),  # a spurious detection's prediction: no object of that id
    ]
    predictions = [replace(p, extras={"final_source": "depth fit" if p.id % 2 else "network"}) for p in predictions]
    out = folder / "results" / "procedural-clean"
    (out / "multisparc" / "scene_00000").mkdir(parents=True)
    write_poses(out / "multisparc" / "scene_00000" / "predictions.json", predictions)
    (out / "results.json").write_text(json.dumps({"scenes": str(folder / "sets")}))
    return out


def test_failure_kind_reads_rotation_first_then_translation_and_scale() -> None:
    assert failure_kind(0.05, 5.0, 0.1) == "aligned"
    assert failure_kind(0.9, 175.0, 0.5) == "flip"  # a flipped off-centre model is far off too
    assert failure_kind(0.05, 90.0, 0.1) == "quarter turn"
    assert failure_kind(0.05, 35.0, 0.1) == "other rotation"
    assert failure_kind(0.25, 5.0, 0.1) == "translation"
    assert failure_kind(0.05, 5.0, 0.25) == "scale"
    assert failure_kind(0.25, 5.0, 0.25) == "translation and scale"


def test_predictions_with_known_errors_are_sorted_into_their_kinds(tmp_path) -> None:
    results = write_results(tmp_path)
    outcomes = method_outcomes(results, "multisparc")
    assert [o.kind for o in outcomes] == [
        "aligned", "flip", "aligned", "quarter turn", "other rotation", "translation", "scale",
        "translation and scale",
    ]
    assert outcomes[1].r_deg == pytest.approx(178.0, abs=1e-6)
    assert outcomes[5].t == pytest.approx(0.3, abs=1e-9) and outcomes[6].s == pytest.approx(0.3, abs=1e-9)
    assert [o.source for o in outcomes[:2]] == ["depth fit", "network"]
    tables = failure_tables({"procedural-clean": outcomes})
    assert f"| set | objects | {' % | '.join(KINDS)} % |" in tables
    # 8 objects: 2 aligned (25 %), one of each other kind (12.5 %).
    assert "| procedural-clean | 8 | 25.0 | 12.5 | 12.5 | 12.5 | 12.5 | 12.5 | 12.5 |" in tables
    # Odd ids kept a depth fit (ids 1 and 3 aligned, 5 turned by 40 deg, 7 scaled), even ids the network's pose.
    assert "| depth fit | 4 | 50.0 | 0.0 | 0.0 | 25.0 | 0.0 | 25.0 | 0.0 |" in tables
    assert "| network | 4 | 0.0 | 25.0 | 25.0 | 0.0 | 25.0 | 0.0 | 25.0 |" in tables
    with pytest.raises(FileNotFoundError, match="did not run"):
        method_outcomes(results, "icp")


def test_bench_failures_writes_its_section(tmp_path) -> None:
    results = write_results(tmp_path)
    markdown = tmp_path / "BENCHMARKS.md"
    assert main(["bench", "failures", "--results", str(results), "--markdown", str(markdown)]) == 0
    text = markdown.read_text()
    assert "## Where the poses fail (multisparc)" in text and "<!-- bench:failures:end -->" in text
    assert "| cabinet | 8 | 25.0 |" in text
