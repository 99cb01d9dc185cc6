"""Choosing the CAD of category-only detections (`inference.cad_choice`, `inference.cad_prior`,
`multisparc align --choose-cad`), on the rendered chair scene of `chair_scene` with a library of four chairs:
the true one (seat block and backrest), a solid block of the same bounding box, a low stool and a long bench."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from chair_scene import chair_mesh
from multisparc import cli
from multisparc.benchmarks.choose_cad import align_from_rgbd_files, as_true_model
from multisparc.cad import CadIndex, SampleCache
from multisparc.datasets.bundle import (
    BundleError,
    Camera,
    Detection,
    Observation,
    SceneBundle,
    read_detections,
    write_bundle,
)
from multisparc.datasets.rgbd import read_box_detections
from multisparc.evaluation.object_errors import image_errors
from multisparc.geometry import quat_to_matrix
from multisparc.inference import Aligner, load_checkpoint, shipped_checkpoint
from multisparc.inference.cad_choice import CHOICE_TAU, choose_cads
from multisparc.inference.cad_prior import observed_extents, proportion_distance, rank_cads, rank_cads_by_fit
from multisparc.inference.stages import observed_points
from multisparc.render import PlacedObject, RayCaster, Room, instance_boxes, render_full

CHAIRS = {"block": (0.55, 0.9, 0.5), "stool": (0.4, 0.45, 0.4), "bench": (1.6, 0.45, 0.45)}


@pytest.fixture(scope="module")
def cads(tmp_path_factory: pytest.TempPathFactory) -> CadIndex:
    folder = tmp_path_factory.mktemp("chairs")
    chair_mesh().export(folder / "chair0.ply")
    for name, extents in CHAIRS.items():
        trimesh.creation.box(extents=extents).export(folder / f"{name}.ply")
    index = {name: {"path": f"{name}.ply", "category": "chair", "sym": "none"} for name in ("block", "stool", "chair0")}
    index["bench"] = {"path": "bench.ply", "category": "chair", "sym": "none"}
    (folder / "cads.json").write_text(json.dumps(index))
    return CadIndex.load(folder / "cads.json", cache=SampleCache(folder / "samples"))


@pytest.fixture(scope="module")
def aligner(cads: CadIndex) -> Aligner:
    model, inputs = load_checkpoint(shipped_checkpoint())
    return Aligner(model, inputs, cads)


@pytest.fixture(scope="module")
def stripped(scene: SceneBundle) -> SceneBundle:
    """The chair scene with its detection's CAD id removed."""
    return replace(scene, detections=[replace(det, cad=None) for det in scene.detections])


def test_prior_reads_proportions_whatever_the_yaw() -> None:
    rng = np.random.default_rng(0)
    # Points on the top and two sides of a 1.0 x 0.5 x 0.6 m box turned by 30 deg about up (-y, OpenCV frame).
    x, z = rng.uniform(-0.5, 0.5, 2000), rng.uniform(-0.3, 0.3, 2000)
    y = rng.uniform(-0.25, 0.25, 2000)
    face = rng.integers(3, size=2000)
    local = np.stack([np.where(face == 1, 0.5, x), np.where(face == 0, 0.25, y), np.where(face == 2, -0.3, z)], 1)
    yaw = math.radians(30.0)
    turn = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    points = local @ turn.T * [1, -1, 1] + [0.2, 0.5, 3.0]
    extents = observed_extents(points, np.array([0.0, -1.0, 0.0]))
    same = proportion_distance(extents, np.array([2.0, 1.0, 1.2]))  # the same box at twice the size
    swapped = proportion_distance(extents, np.array([1.2, 1.0, 2.0]))  # x and z swapped: a turn of 90 deg
    tall = proportion_distance(extents, np.array([0.5, 1.0, 0.6]))
    assert same < 0.05 and swapped < 0.05
    assert tall > 0.6


def test_prior_ranks_the_chairs_by_proportion(scene: SceneBundle, cads: CadIndex, aligner: Aligner) -> None:
    points = observed_points(scene.observation, scene.detections, aligner.stages.icp, 0)[0]
    ranked = rank_cads(points, scene.observation.camera.up, cads, cads.ids_of("chair"))
    order = [cad_id for cad_id, _ in ranked]
    distances = dict(ranked)
    # The block has the chair's bounding box: the prior cannot tell them apart, the alignment must.
    assert set(order[:2]) == {"block", "chair0"} and order[2:] == ["stool", "bench"]
    assert distances["block"] == pytest.approx(distances["chair0"])
    assert distances["chair0"] < 0.15 < distances["stool"] < 0.5 < distances["bench"]
    assert rank_cads(np.zeros((2, 3)), scene.observation.camera.up, cads, ["bench", "stool"]) == [
        ("bench", None),
        ("stool", None),
    ]


def test_choose_cad_picks_and_aligns_the_true_chair(
    scene: SceneBundle, stripped: SceneBundle, aligner: Aligner
) -> None:
    result = choose_cads(aligner, stripped.observation, stripped.detections, k=4)
    (obj,) = result.objects
    assert obj.cad == "chair0"
    errors = image_errors(result, scene.gt)
    assert errors.objects[0].final.aligned, errors.objects[0].final
    choice = obj.extras["cad_choice"]
    assert choice["k"] == 4
    candidates = choice["candidates"]
    assert candidates[0]["cad"] == "chair0" and len(candidates) == 4
    assert all(c["prior_distance"] is None for c in candidates)  # all four aligned: no ranking needed
    scores = [c["choice_score"] for c in candidates]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1] + 1.0
    for c in candidates:  # learned + 160 x geometric (cad_choice.CAD_FUSION_WEIGHT)
        logit = math.log(c["score"] / (1 - c["score"]))
        assert c["choice_score"] == pytest.approx(logit + 160.0 * c["geometric_score"], abs=1e-6)
    assert choice["rule"] == "learned logit + 160 x geometric score"
    # The record keeps the contract's fields and the chosen pose is the winning pass's.
    (record,) = result.to_predictions()
    assert record["cad"] == "chair0" and record["cad_choice"] == choice
    assert {"id", "category", "cad", "t", "q", "s", "score", "detection_score"} <= set(record)
    assert result.timings["cad prior"] >= 0.0 and result.timings["total"] > result.timings["network"]


def test_fewer_candidates_than_models_take_the_prior_nearest(stripped: SceneBundle, aligner: Aligner) -> None:
    result = choose_cads(aligner, stripped.observation, stripped.detections, k=2, prior="proportions")
    candidates = result.objects[0].extras["cad_choice"]["candidates"]
    assert {c["cad"] for c in candidates} == {"block", "chair0"}
    assert all(c["prior_distance"] < 0.15 for c in candidates)
    assert result.objects[0].cad == "chair0"
    with pytest.raises(ValueError, match="unknown CAD prior 'size'"):
        choose_cads(aligner, stripped.observation, stripped.detections, k=2, prior="size")


def test_fit_prior_tells_a_shape_from_a_block_of_its_bounding_box(tmp_path: Path) -> None:
    """An L-shaped cabinet (a low wide box with a tall box on its left) seen from 3 m, ranked among itself, a solid
    block of the same bounding box and a thin panel: the depth-only fits rank the L first and the block clearly
    behind it, which the proportions prior cannot (it scores the L and the block alike)."""
    low = trimesh.creation.box(
        extents=(1.0, 0.5, 0.5), transform=trimesh.transformations.translation_matrix((0, -0.25, 0))
    )
    tall = trimesh.creation.box(
        extents=(0.5, 0.5, 0.5), transform=trimesh.transformations.translation_matrix((-0.25, 0.25, 0))
    )
    trimesh.util.concatenate([low, tall]).export(tmp_path / "ell.ply")
    trimesh.creation.box(extents=(1.0, 1.0, 0.5)).export(tmp_path / "block.ply")
    trimesh.creation.box(extents=(1.0, 1.0, 0.1)).export(tmp_path / "panel.ply")
    index = {name: {"path": f"{name}.ply", "category": "cabinet", "sym": "none"} for name in ("panel", "block", "ell")}
    (tmp_path / "cads.json").write_text(json.dumps(index))
    cads = CadIndex.load(tmp_path / "cads.json", cache=SampleCache(tmp_path / "samples"))
    K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
    up = np.array([0.0, -1.0, 0.0])
    turn = math.radians(35.0)  # upright (CAD +Y along camera -y), turned about up so that two faces show
    R = np.array([[math.cos(turn), 0.0, math.sin(turn)], [0.0, -1.0, 0.0], [math.sin(turn), 0.0, -math.cos(turn)]])
    room = Room.box(up, 1.2, wall_distances=(8.0, 4.0, 4.0, 4.0))
    frame = render_full(
        RayCaster(cads), [PlacedObject(1, "ell", R, np.array([0.0, 0.5, 3.0]), np.ones(3))], room, K, 640, 480
    )
    bbox = np.array(instance_boxes(frame.instance, [1])[1], dtype=np.float64)
    detection = Detection(1, "cabinet", bbox, None, 1.0, frame.instance == 1)
    observation = Observation(frame.rgb, Camera(K, 640, 480, up=up), frame.depth, frame.normals)
    aligner = Aligner(*load_checkpoint(shipped_checkpoint()), cads)
    points = observed_points(observation, [detection], aligner.stages.icp, 0)[0]
    # The choice ranks with its own tau floor (`cad_choice.CHOICE_TAU`).
    stages = replace(aligner.stages, icp=replace(aligner.stages.icp, inlier_distance=CHOICE_TAU))
    ranked = rank_cads_by_fit(
        observation, detection, points, cads, ["panel", "block", "ell"], stages, aligner.initialisation
    )
    distances = dict(ranked)
    assert ranked[0][0] == "ell" and distances["ell"] < 0.3, ranked
    assert distances["block"] > distances["ell"] + 0.1
    assert all(0.0 <= value <= 1.0 for value in distances.values())
    proportions = dict(rank_cads(points, up, cads, ["panel", "block", "ell"]))
    assert proportions["block"] == pytest.approx(proportions["ell"])
    empty = rank_cads_by_fit(
        observation, detection, np.zeros((2, 3)), cads, ["block", "ell"], stages, aligner.initialisation
    )
    assert empty == [("block", None), ("ell", None)]
    # Through the choice: with K = 1 the fit prior's first is the only candidate, with its distance.
    result = choose_cads(aligner, observation, [detection], k=1)
    (candidate,) = result.objects[0].extras["cad_choice"]["candidates"]
    assert candidate["cad"] == "ell" and candidate["prior_distance"] == pytest.approx(distances["ell"])


def test_a_given_cad_is_kept_unless_all_are_chosen(scene: SceneBundle, aligner: Aligner) -> None:
    given = [replace(det, cad="block") for det in scene.detections]
    kept = choose_cads(aligner, scene.observation, given, k=4)
    assert kept.objects[0].cad == "block" and "cad_choice" not in kept.objects[0].extras
    assert choose_cads(aligner, scene.observation, given, k=4, choose_all=True).objects[0].cad == "chair0"


def test_a_category_without_cads_is_a_one_line_error(stripped: SceneBundle, aligner: Aligner) -> None:
    table = [replace(det, category="table") for det in stripped.detections]
    with pytest.raises(BundleError, match=r"^scene/detections.json: detection 1: .* no CAD of category 'table'$"):
        choose_cads(aligner, stripped.observation, table, k=3, detections_file="scene/detections.json")


def test_detections_without_cad_need_choose_cad(tmp_path: Path) -> None:
    path = tmp_path / "detections.json"
    path.write_text(
        json.dumps(
            [
                {"id": 3, "category": "chair", "bbox": [10, 10, 50, 60]},
                {"id": 4, "category": "chair", "bbox": [60, 10, 90, 60], "cad": None},
            ]
        )
    )
    with pytest.raises(BundleError, match=r"detection #0 \(id 3\): no cad; .*--choose-cad K"):
        read_detections(path, 120, 160)
    assert [det.cad for det in read_detections(path, 120, 160, require_cad=False)] == [None, None]


def test_bundle_boxes_may_give_a_category_only(tmp_path: Path, cads: CadIndex) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps([{"bbox": [10, 10, 50, 60], "category": "chair"}]))
    assert [det.cad for det in read_box_detections(path, 160, 120, cads)] == [None]
    path.write_text(json.dumps([{"bbox": [10, 10, 50, 60], "category": "table"}]))
    with pytest.raises(BundleError, match=r"boxes.json: detection #0.*no CAD of category 'table' to choose from"):
        read_box_detections(path, 160, 120, cads)


def test_align_cli_chooses_the_cad(tmp_path: Path, stripped: SceneBundle, cads: CadIndex, capsys) -> None:
    scene_dir = write_bundle(tmp_path / "chair", stripped)
    assert "cad" not in json.loads((scene_dir / "detections.json").read_text())[0]
    base = ["align", str(scene_dir), "--cads", str(cads.source), "--checkpoint", str(shipped_checkpoint())]
    assert cli.main([*base, "--out", str(tmp_path / "plain"), "--no-overlay"]) == 1
    assert "--choose-cad K" in (tmp_path / "plain" / "chair" / "error.txt").read_text()
    assert cli.main([*base, "--out", str(tmp_path / "out"), "--choose-cad", "3", "--no-overlay"]) == 0
    (record,) = json.loads((tmp_path / "out" / "chair" / "predictions.json").read_text())
    assert record["cad"] == "chair0"
    assert record["cad_choice"]["candidates"][0]["cad"] == "chair0"
    assert {c["cad"] for c in record["cad_choice"]["candidates"]} == {"block", "chair0", "stool"}
    prior = ["--choose-cad", "2", "--cad-prior", "proportions", "--no-overlay"]
    assert cli.main([*base, "--out", str(tmp_path / "proportions"), *prior]) == 0
    (record,) = json.loads((tmp_path / "proportions" / "chair" / "predictions.json").read_text())
    assert {c["cad"] for c in record["cad_choice"]["candidates"]} == {"block", "chair0"}  # the same bounding box
    assert cli.main([*base, "--out", str(tmp_path / "bad"), "--choose-cad", "0"]) == 2
    assert "--choose-cad takes a positive number" in capsys.readouterr().err


def test_the_rgbd_files_path_chooses_and_aligns_the_chair_from_boxes_only(
    scene: SceneBundle, aligner: Aligner, tmp_path: Path
) -> None:
    renamed = replace(scene, detections=[replace(det, id=7) for det in scene.detections])
    result = align_from_rgbd_files(aligner, renamed, 4, tmp_path / "frame")
    boxes = json.loads((tmp_path / "frame" / "boxes.json").read_text())
    assert [set(box) for box in boxes] == [{"bbox", "category", "score"}]  # no CAD, id or mask
    (obj,) = result.objects
    assert obj.id == 7 and obj.cad == "chair0"
    errors = image_errors(result, [replace(pose, id=7) for pose in scene.gt])
    assert errors.objects[0].final.aligned, errors.objects[0].final
    # The same files with the boxes' true CADs: aligned without a choice.
    known = align_from_rgbd_files(aligner, renamed, None, tmp_path / "known")
    boxes = json.loads((tmp_path / "known" / "boxes.json").read_text())
    assert [box["cad"] for box in boxes] == ["chair0"]
    (obj,) = known.objects
    assert obj.id == 7 and "cad_choice" not in obj.extras
    errors = image_errors(known, [replace(pose, id=7) for pose in scene.gt])
    assert errors.objects[0].final.aligned, errors.objects[0].final


def test_a_chosen_pose_re_expressed_as_the_true_model_keeps_its_box(tmp_path: Path) -> None:
    small = trimesh.creation.box(extents=(0.4, 0.5, 0.4))
    small.apply_translation((0.1, 0.25, 0.0))  # a model whose frame is not centred on its box
    small.export(tmp_path / "small.ply")
    trimesh.creation.box(extents=(0.8, 1.0, 0.6)).export(tmp_path / "big.ply")
    index = {name: {"path": f"{name}.ply", "category": "chair", "sym": "none"} for name in ("small", "big")}
    (tmp_path / "cads.json").write_text(json.dumps(index))
    cads = CadIndex.load(tmp_path / "cads.json", cache=SampleCache(tmp_path / "samples"))
    q = [math.cos(math.radians(15)), 0.0, math.sin(math.radians(15)), 0.0]  # 30 deg about y, (w, x, y, z)
    chosen = {"id": 4, "cad": "small", "q": q, "t": [0.3, 0.2, 3.0], "s": [1.5, 1.2, 1.0], "score": 0.9}
    same = {"id": 5, "cad": "big", "q": q, "t": [1.0, 0.2, 4.0], "s": [1.0, 1.0, 1.0], "score": 0.8}
    moved, kept = as_true_model([chosen, same], {4: "big", 5: "big"}, cads)
    assert kept == same
    assert moved["cad"] == "big" and moved["chosen_cad"] == "small"

    def corners(record: dict) -> np.ndarray:
        R = quat_to_matrix(torch.tensor(record["q"], dtype=torch.float64)).numpy()
        signs = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
        local = cads.centre(record["cad"]) + signs * cads.extent(record["cad"])
        return (local * record["s"]) @ R.T + record["t"]

    np.testing.assert_allclose(corners(moved), corners(chosen), atol=1e-9)
    np.testing.assert_allclose(moved["s"], [0.75, 0.6, 2.0 / 3.0])
