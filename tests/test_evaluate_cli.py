"""Tests of `multisparc evaluate` and `multisparc benchset` end to end, on two tiny synthetic scenes.

Scenes: 160 x 120 images drawn by `multisparc.benchmarks.sets.make_set` from a two-model CAD index (a
chair, no symmetry; a table, half-turn symmetric), clean perception (no false or missed detections).
The network is the small CPU configuration, randomly initialised and exported as a model.pt.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from multisparc import baselines
from multisparc.benchmarks.ablation import SetResults, ablation_table
from multisparc.benchmarks.sets import SETS, make_set
from multisparc.benchmarks.starts import start_errors
from multisparc.cad import CadIndex
from multisparc.cad.index import SWEETHOME3D_TRAINING
from multisparc.commands import benchset as benchset_command
from multisparc.commands import evaluate as evaluate_command
from multisparc.datasets.bundle import BundleError, ObjectPose, read_poses, write_poses
from multisparc.geometry import quat_to_matrix, rotation_error
from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig, MultiSparcNet
from multisparc.scenes import SceneConfig
from multisparc.training.checkpoint import export_model

# End to end (CLI runs, rendered scenes, trained networks): left out of the fast subset.
pytestmark = pytest.mark.slow

METHODS = ("multisparc", "single", "2d-score", "initial", "icp")
SCENE_CONFIG = SceneConfig(width=160, height=120, focal=145.0, objects=(1, 2))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cads_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cads")
    seat = trimesh.creation.box(extents=(0.55, 0.45, 0.5))
    seat.apply_translation((0.0, -0.225, 0.0))
    back = trimesh.creation.box(extents=(0.55, 0.45, 0.1))
    back.apply_translation((0.0, 0.225, -0.2))
    trimesh.util.concatenate([seat, back]).export(folder / "chair.ply")
    trimesh.creation.box(extents=(1.2, 0.74, 0.8)).export(folder / "table.ply")
    records = {
        "chair0": {"path": "chair.ply", "category": "chair", "sym": "none"},
        "table0": {"path": "table.ply", "category": "table", "sym": "2"},
    }
    (folder / "cads.json").write_text(json.dumps(records))
    return folder / "cads.json"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory, cads_json: Path) -> Path:
    folder = tmp_path_factory.mktemp("bench") / "scenes"
    spec = SETS["procedural-clean"]
    assert make_set(folder, cads_json, spec, 2, seed=5, config=SCENE_CONFIG, progress=False) == 2
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = MultiSparcNet(replace(ModelConfig.cpu(), n_blocks=2))
    torch.nn.init.normal_(model.decoder.out.weight, std=0.01)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    export_model(path, model, model.config.to_dict(), InputConfig(n_bbox=120, n_cad=40).to_dict())
    return path


def evaluate(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    evaluate_command.add_arguments(parser)
    return evaluate_command.run(parser.parse_args([str(a) for a in argv]))


def scene_dirs(scenes: Path) -> list[Path]:
    return sorted(path for path in scenes.iterdir() if (path / "camera.json").is_file())


def is_aligned(pred: ObjectPose, gt: ObjectPose) -> bool:
    """The sparc preset's rule written out: 20 cm, 20 deg (symmetry only when shared), 20 % per axis."""
    R_pred, R_gt = (quat_to_matrix(torch.as_tensor(p.q, dtype=torch.float64)) for p in (pred, gt))
    sym = gt.sym if pred.sym == gt.sym else "none"
    rotation = math.degrees(float(rotation_error(R_pred, R_gt, sym)))
    scale = float(np.mean(np.abs(pred.s / gt.s - 1.0)))
    return bool(np.linalg.norm(pred.t - gt.t) <= 0.2 and rotation <= 20.0 and scale <= 0.2)


def hand_count(predictions: Path, scenes: list[Path]) -> tuple[int, int]:
    """(correct, ground-truth objects) by the sparc rules: detection score > 0.5, by descending score, each
    prediction takes the first free same-class object it is aligned with. The fixture has no two
    same-class predictions within the NMS radius and no more predictions of a class than objects, which
    this asserts, so NMS and the per-class cap change nothing."""
    correct = total = 0
    for scene in scenes:
        gt = read_poses(scene / "gt.json")
        preds = [p for p in read_poses(predictions / scene.name / "predictions.json") if p.detection_score > 0.5]
        for name in {p.category for p in preds}:
            same = [p for p in preds if p.category == name]
            assert len(same) <= sum(g.category == name for g in gt)
            for i, a in enumerate(same):
                assert all(np.linalg.norm(a.t - b.t) > 0.4 for b in same[i + 1 :])
        taken: set[int] = set()
        for pred in sorted(preds, key=lambda p: -p.score):
            for index, obj in enumerate(gt):
                if index not in taken and obj.category == pred.category and is_aligned(pred, obj):
                    taken.add(index)
                    break
        correct += len(taken)
        total += len(gt)
    return correct, total


def test_evaluate_runs_every_method_and_reports_consistent_numbers(scenes, cads_json, checkpoint, tmp_path) -> None:
    out, markdown = tmp_path / "out", tmp_path / "BENCH.md"
    argv = ["--scenes", scenes, "--cads", cads_json, "--checkpoint", checkpoint, "--out", out, "--ap-points", "500"]
    assert evaluate(*argv, "--methods", ",".join(METHODS), "--markdown", markdown) == 0
    dirs = scene_dirs(scenes)
    for name in METHODS:
        for scene in dirs:
            assert (out / name / scene.name / "predictions.json").is_file()
            assert (out / name / scene.name / "alignment.json").is_file()
        assert json.loads((out / name / "method.json").read_text())["method"] == name
    results = json.loads((out / "results.json").read_text())
    assert [row["method"] for row in results["table1"]["rows"]] == list(METHODS)
    assert [row["method"] for row in results["table2"]["rows"]] == list(METHODS)
    rows = {row["method"]: row for row in results["table1"]["rows"]}

    # Per-scene accuracy of "initial" and "icp" against the rules applied by hand to their predictions.
    n_gt = sum(len(read_poses(scene / "gt.json")) for scene in dirs)
    assert sum(results["table1"]["counts"].values()) == n_gt > 0
    for name in ("initial", "icp"):
        correct, total = hand_count(out / name, dirs)
        per_scene = results["methods"][name]["per_scene"]
        assert (sum(per_scene["correct"].values()), sum(per_scene["total"].values())) == (correct, total)
        assert rows[name]["instance"] == pytest.approx(round(100.0 * correct / total, 1))
    assert sum(results["methods"]["icp"]["per_scene"]["correct"].values()) > 0  # ICP aligns some of them
    # Time per image: the mean of the images' alignment times.
    for name in METHODS:
        seconds = [json.loads((out / name / s.name / "alignment.json").read_text())["timings"]["total"] for s in dirs]
        assert rows[name]["time_ms"] == round(1000.0 * np.mean(seconds))
    assert results["methods"]["2d-score"]["ranking_score"] == "detection_score"
    assert results["methods"]["2d-score"]["per_scene"]["ranking_score"] == "detection_score"
    assert results["methods"]["multisparc"]["per_scene"]["ranking_score"] == "score"

    # Calibration plots, the Markdown report and the BENCHMARKS.md-style section.
    for info in results["calibration"].values():
        with Image.open(out / info["plot"]) as image:
            assert image.format == "PNG"
    assert set(results["calibration"]) == set(METHODS)
    assert set(results["calibration"]["multisparc"]["ece"]) == {"classification score", "2D detection score"}
    assert set(results["calibration"]["icp"]["ece"]) == {"ICP fit score", "2D detection score"}
    report = (out / "results.md").read_text()
    assert "| Method | bathtub | bed |" in report and "| icp |" in report and "AP50 (rho 0.5)" in report
    ours, icp = (rows[name]["instance"] for name in ("multisparc", "icp"))
    verdict = "ahead of" if ours > icp else "behind" if ours < icp else "level with"
    assert f"- multisparc is {verdict} icp by {abs(ours - icp):.1f} points of instance accuracy" in report
    section = markdown.read_text()
    assert "<!-- bench:evaluate-scenes:start -->" in section and "<!-- bench:evaluate-scenes:end -->" in section
    assert "Command: `" in section and "Machine: " in section and "| initial |" in section


def test_evaluate_resumes_and_skips_scenes_already_done(scenes, cads_json, checkpoint, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    argv = ["--scenes", scenes, "--cads", cads_json, "--checkpoint", checkpoint, "--out", out, "--no-ap-mesh"]
    assert evaluate(*argv, "--methods", "initial,icp") == 0
    first = json.loads((out / "results.json").read_text())["table1"]

    calls: list[str] = []
    real = baselines.make_method

    class Counting:
        def __init__(self, name: str, method) -> None:
            self.name, self.method = name, method

        def align(self, observation, detections, scene_dir=None):
            calls.append(f"{self.name}/{Path(scene_dir).name}")
            return self.method.align(observation, detections, scene_dir)

    monkeypatch.setattr(baselines, "make_method", lambda name, *a, **k: Counting(name, real(name, *a, **k)))
    assert evaluate(*argv, "--methods", "initial,icp") == 0
    assert calls == []  # everything was done
    assert json.loads((out / "results.json").read_text())["table1"] == first

    last = scene_dirs(scenes)[-1].name
    (out / "icp" / last / "predictions.json").unlink()  # as if killed while aligning it
    assert evaluate(*argv, "--methods", "initial,icp") == 0
    assert calls == [f"icp/{last}"]
    with pytest.raises(BundleError, match=r"initial.*method\.json: holds predictions of 'initial' with settings"):
        evaluate(*argv, "--methods", "initial", "--seed", "1")  # other settings: not mixed in
    assert (
        json.loads((out / "results.json").read_text())["table1"]["rows"][1]["instance"] == first["rows"][1]["instance"]
    )
    # A bundle that changed since its predictions (a regenerated set) is aligned again, not reused.
    camera = Path(scenes) / scene_dirs(scenes)[0].name / "camera.json"
    original = camera.read_text()
    try:
        camera.write_text(original + " ")
        calls.clear()
        assert evaluate(*argv, "--methods", "icp") == 0
        assert calls == [f"icp/{camera.parent.name}"]
    finally:
        camera.write_text(original)


def test_evaluate_scores_existing_predictions_with_the_same_code(scenes, cads_json, tmp_path) -> None:
    # Ground truth as predictions, one object moved by 50 cm: every object but that one is aligned.
    oracle = tmp_path / "oracle"
    n_objects = 0
    for index, scene in enumerate(scene_dirs(scenes)):
        poses = read_poses(scene / "gt.json")
        for pose in poses:
            pose.score, pose.detection_score = 0.9, 0.9
        if index == 0:
            poses[0].t = poses[0].t + np.array([0.5, 0.0, 0.0])
        n_objects += len(poses)
        write_poses(oracle / scene.name / "predictions.json", poses)
    out = tmp_path / "out"
    assert evaluate("--scenes", scenes, "--cads", cads_json, "--predictions", f"truth={oracle}", "--out", out) == 0
    results = json.loads((out / "results.json").read_text())
    per_scene = results["methods"]["truth"]["per_scene"]
    assert per_scene["instance"] == pytest.approx((n_objects - 1) / n_objects)
    assert results["table1"]["rows"][0]["time_ms"] is None  # no alignment.json: no time
    assert not (out / "multisparc").exists()  # no method ran


def test_evaluate_rejects_bad_input(scenes, cads_json, tmp_path) -> None:
    base = ["--scenes", scenes, "--cads", cads_json, "--out", tmp_path / "out"]
    with pytest.raises(ValueError, match="need --checkpoint"):
        evaluate(*base, "--methods", "initial,icp")
    with pytest.raises(ValueError, match="unknown method 'sparc'"):
        evaluate(*base, "--methods", "sparc")
    no_gt = tmp_path / "no_gt"
    shutil.copytree(scene_dirs(scenes)[0], no_gt / "scene")
    (no_gt / "scene" / "gt.json").unlink()
    with pytest.raises(BundleError, match=r"gt\.json: file not found"):
        evaluate("--scenes", no_gt, "--cads", cads_json, "--out", tmp_path / "o", "--methods", "icp", "--strict")
    # Without --strict the scene is skipped, which leaves none to score.
    with pytest.raises(ValueError, match="no_gt: no scene left to score"):
        evaluate("--scenes", no_gt, "--cads", cads_json, "--out", tmp_path / "o", "--methods", "icp")


def test_benchset_makes_paired_seeded_sets(cads_json, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    benchset_command.add_arguments(parser)
    out = tmp_path / "sets"
    argv = ["--out", str(out), "--scenes", "1", "--seed", "3", "--procedural-cads", str(cads_json)]
    sets = "procedural-clean,procedural-realistic,procedural-depth105,procedural-boxes"
    args = parser.parse_args([*argv, "--sets", sets])
    assert benchset_command.run(args) == 0
    clean, noisy, scaled, boxes = (out / name / "scene_00000" for name in sets.split(","))
    # The same scene under two noise levels: same ground truth, different depth.
    assert (clean / "gt.json").read_text() == (noisy / "gt.json").read_text()
    assert not np.array_equal(np.load(clean / "depth.npy"), np.load(noisy / "depth.npy"))
    # The user-input variants: the clean depth times 1.05, the same normals; the same boxes without masks.
    np.testing.assert_allclose(np.load(scaled / "depth.npy"), 1.05 * np.load(clean / "depth.npy"), rtol=1e-6)
    np.testing.assert_array_equal(np.load(scaled / "normals.npy"), np.load(clean / "normals.npy"))
    with_masks, without = (json.loads((folder / "detections.json").read_text()) for folder in (clean, boxes))
    assert [d["bbox"] for d in without] == [d["bbox"] for d in with_masks]
    assert any("mask" in d for d in with_masks) and not any("mask" in d for d in without)
    assert set(CadIndex.load(out / "procedural-clean" / "cads.json")) == {"chair0", "table0"}
    info = json.loads((out / "benchset.json").read_text())
    assert info["seed"] == 3 and set(info["sets"]) == set(sets.split(","))
    assert info["sets"]["procedural-depth105"]["depth_scale"] == 1.05
    with pytest.raises(ValueError, match="--sweethome3d"):
        benchset_command.run(parser.parse_args([*argv, "--sets", "sweethome3d-clean"]))


def test_structured_sets_hold_several_objects_arranged_together(cads_json, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    benchset_command.add_arguments(parser)
    out = tmp_path / "sets"
    sets = "procedural-clean,procedural-structured-clean"
    args = parser.parse_args(["--out", str(out), "--scenes", "4", "--procedural-cads", str(cads_json), "--sets", sets])
    assert benchset_command.run(args) == 0
    assert json.loads((out / "benchset.json").read_text())["sets"]["procedural-structured-clean"]["structured"]

    def objects(name: str) -> list[int]:
        return [len(json.loads((scene / "gt.json").read_text())) for scene in sorted((out / name).glob("scene_*"))]

    # 2 to 5 objects a scene (of which some may be too hidden to count) against 1 to 4 placed one by one.
    structured, independent = objects("procedural-structured-clean"), objects("procedural-clean")
    assert min(structured) >= 1 and sum(structured) > sum(independent)


SWEETHOME3D = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cad" / "sweethome3d"


@pytest.mark.skipif(
    not SWEETHOME3D.is_dir(), reason="the SweetHome3D catalogue (../shared/data/cad/sweethome3d) is absent"
)
def test_benchset_indexes_the_sweethome3d_catalogue(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    benchset_command.add_arguments(parser)
    out = tmp_path / "sets"
    args = parser.parse_args(
        ["--out", str(out), "--scenes", "1", "--sets", "sweethome3d-clean", "--sweethome3d", str(SWEETHOME3D)]
    )
    assert benchset_command.run(args) == 0
    cads = CadIndex.load(out / "sweethome3d-clean" / "cads.json")
    # The test half of the catalogue only: the models training may use stay out of the benchmark.
    assert len(cads) == 16 and all(cad_id.startswith("sh3d_") for cad_id in cads)
    assert not {cad_id.removeprefix("sh3d_") for cad_id in cads} & SWEETHOME3D_TRAINING
    gt = read_poses(out / "sweethome3d-clean" / "scene_00000" / "gt.json")
    assert gt and all(pose.cad in cads for pose in gt)


def test_evaluate_sets_the_hypotheses_and_refinements_of_the_network(scenes, cads_json, checkpoint, tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["--scenes", scenes, "--cads", cads_json, "--checkpoint", checkpoint, "--out", out, "--no-ap-mesh"]
    options = ["--methods", "multisparc-paper", "--limit", "1", "--hypotheses", "8", "--refinements", "4"]
    assert evaluate(*argv, *options) == 0
    folder = out / "multisparc-paper"
    (scene,) = [path for path in folder.iterdir() if path.is_dir()]
    predictions = json.loads((scene / "predictions.json").read_text())
    assert all(len(p["hypothesis_scores"]) == 8 and len(p["iterations"]) == 5 for p in predictions)
    settings = json.loads((folder / "method.json").read_text())["settings"]
    assert settings["hypotheses"] == 8 and settings["refinements"] == 4


def test_bench_ablation_lays_the_sets_side_by_side(tmp_path) -> None:
    def results(name: str, rows: dict[str, tuple[float, float, float]]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        table = [{"method": m, "instance": i, "class": c, "time_ms": t} for m, (i, c, t) in rows.items()]
        record = {"scenes": f"sets/{name.removesuffix('-h8')}", "preset": "sparc", "table1": {"rows": table}}
        (folder / "results.json").write_text(json.dumps(record))
        return folder

    clean = results(
        "procedural-clean",
        {"multisparc": (80.0, 78.0, 400.0), "icp": (65.0, 60.0, 300.0), "icp-back-faces": (73.5, 70.0, 310.0)},
    )
    boxes = results("procedural-boxes", {"multisparc": (62.5, 60.0, 420.0), "multisparc-paper": (40.0, 41.0, 70.0)})
    more = results("procedural-clean-h8", {"multisparc": (79.0, 77.0, 500.0)})  # named by its folder
    sets = [SetResults.read(clean), SetResults.read(boxes), SetResults.read(more)]
    text = ablation_table(sets)
    assert "| method | procedural-clean inst / class / ms | procedural-boxes" in text
    assert "| procedural-clean-h8 inst / class / ms |" in text
    assert "| multisparc | 80.0 / 78.0 / 400 | 62.5 / 60.0 / 420 | 79.0 / 77.0 / 500 |" in text
    assert "| multisparc-paper | - | 40.0 / 41.0 / 70 | - |" in text
    assert "procedural-clean: multisparc 80.0 % against icp 65.0 % (+15.0 points)" in text
    assert "procedural-clean: multisparc 80.0 % against icp-back-faces 73.5 % (+6.5 points)" in text
    assert "procedural-boxes (boxes without masks): multisparc loses 17.5 points against procedural-clean" in text
    targets = ablation_table(sets, {"procedural-clean": 80.0, "procedural-boxes": 65.0})
    assert "target on procedural-clean: multisparc 80.0 % against 80 %: met." in targets
    assert "target on procedural-boxes: multisparc 62.5 % against 65 %: missed by 2.5 points." in targets
    with pytest.raises(ValueError, match="no result of multisparc on a set of that name"):
        ablation_table(sets, {"sweethome3d-clean": 75.0})
    with pytest.raises(FileNotFoundError, match=r"results\.json: no such file"):
        SetResults.read(tmp_path / "nowhere")


def test_start_errors_compare_the_two_starts_on_the_same_hypotheses(scenes, cads_json) -> None:
    paper, observed = start_errors(scene_dirs(scenes), CadIndex.load(cads_json))
    assert (paper.start, observed.start) == ("paper", "observed")
    assert paper.n_objects == observed.n_objects > 0
    # Both starts share their rotations: only centre and scale differ.
    assert observed.r_deg == pytest.approx(paper.r_deg)
    assert all(0 < value < 5 for value in (paper.t, observed.t, paper.s, observed.s))
    assert (observed.t, observed.s) != (paper.t, paper.s)
