"""Tests of the evaluation protocols on toy scenes whose right answers are worked out by hand."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

from multisparc.cad import CadEntry, CadIndex, SampleCache
from multisparc.datasets.bundle import ObjectPose
from multisparc.evaluation import (
    OTHER,
    ROCA,
    SCAN2CAD,
    SPARC,
    ConversionError,
    ImageFrame,
    MethodRow,
    PerImageRow,
    WorldObject,
    accuracy_vs_score,
    alignment_table_json,
    alignment_table_markdown,
    assess_frame,
    average_precision,
    evaluate_ap_mesh,
    evaluate_per_image,
    evaluate_scenes,
    f_scores,
    get_preset,
    greedy_match,
    ground_truth_from_bundles,
    method_row,
    model_f_scores,
    nms_3d,
    per_image_table_markdown,
    plot_calibration,
    predictions_from_bundles,
    read_roca_predictions,
    read_scan2cad_annotations,
    read_scan2cad_csv,
    read_scan2cad_submission,
    reliability_diagram,
    reproject_ground_truth,
    roca_frame,
    rotation_errors_deg,
    strict_per_image,
    write_roca_predictions,
    write_scan2cad_csv,
    write_scan2cad_submission,
)
from multisparc.render import PlacedObject, RayCaster, render_full

PRESETS = (SCAN2CAD, ROCA, SPARC)


def _yaw(degrees: float) -> np.ndarray:
    return Rotation.from_euler("y", degrees, degrees=True).as_matrix()


def _obj(
    category: str,
    cad: str,
    t=(0.0, 0.0, 0.0),
    yaw: float = 0.0,
    s=(1.0, 1.0, 1.0),
    sym: str = "none",
    score: float = 0.9,
    detection_score: float = 0.9,
    centre=(0.0, 0.0, 0.0),
) -> WorldObject:
    return WorldObject(category, cad, _yaw(yaw), t, s, sym, score, detection_score, np.asarray(centre, dtype=float))


def _accuracy(preset, predictions, ground_truth) -> float:
    return evaluate_scenes(predictions, ground_truth, preset).instance


# Per-scene presets --------------------------------------------------------------------------------


def test_presets_follow_their_scripts() -> None:
    assert SCAN2CAD.reported_classes[-1] == OTHER and "bed" not in SCAN2CAD.classes
    assert SCAN2CAD.label("bin") == "trashbin"
    assert len(ROCA.classes) == len(SPARC.classes) == 9
    assert (SCAN2CAD.scale_mode, ROCA.scale_mode, SPARC.scale_mode) == ("mean_ratio", "mean_ratio", "per_axis")
    assert (SCAN2CAD.scenes, ROCA.scenes, SPARC.scenes) == ("submitted", "all", "submitted")
    assert SCAN2CAD.nms is None and ROCA.nms == SPARC.nms
    ablation = get_preset("sparc", ranking_score="detection_score", require_same_cad=True)
    assert ablation.ranking_score == "detection_score" and ablation.require_same_cad and ablation.name == "sparc"
    with pytest.raises(ValueError, match="unknown evaluation preset"):
        get_preset("scannet")


def test_rotation_errors_use_the_symmetry_samples_of_the_scripts() -> None:
    R = np.stack([_yaw(0.0)] * 4)
    turned = np.stack([_yaw(180.0), _yaw(180.0), _yaw(95.0), _yaw(25.0)])
    errors = rotation_errors_deg(R, turned, ["none", "2", "4", "inf"])
    # 180 deg; 0 after a half turn; 5 deg from the quarter turn; 5 deg from the nearest 10-deg sample.
    np.testing.assert_allclose(errors, [180.0, 0.0, 5.0, 5.0], atol=1e-6)


def test_symmetric_object_turned_by_its_symmetry() -> None:
    # Scene: a table of CAD "sym2" (half-turn symmetric), a table of CAD "plain" (no symmetry) and a chair,
    # far apart. Each table is predicted half-turned, with the other table's CAD.
    ground_truth = {
        "scene": [
            _obj("table", "plain", t=(0, 0, 0), sym="none"),
            _obj("table", "sym2", t=(5, 0, 0), sym="2"),
        ]
    }
    # Right CAD, turned by its own symmetry: correct everywhere.
    same_cad = {"scene": [_obj("table", "sym2", t=(5, 0, 0), yaw=180)]}
    for preset in PRESETS:
        assert _accuracy(preset, same_cad, ground_truth) == pytest.approx(0.5), preset.name
    # Symmetric CAD on the asymmetric ground truth: scan2cad takes the predicted CAD's symmetry (correct),
    # roca and sparc only a shared one (wrong).
    symmetric_on_plain = {"scene": [_obj("table", "sym2", t=(0, 0, 0), yaw=180)]}
    assert _accuracy(SCAN2CAD, symmetric_on_plain, ground_truth) == pytest.approx(0.5)
    assert _accuracy(ROCA, symmetric_on_plain, ground_truth) == 0.0
    assert _accuracy(SPARC, symmetric_on_plain, ground_truth) == 0.0
    # Asymmetric CAD on the symmetric ground truth: no symmetry applies in any preset.
    plain_on_symmetric = {"scene": [_obj("table", "plain", t=(5, 0, 0), yaw=180)]}
    for preset in PRESETS:
        assert _accuracy(preset, plain_on_symmetric, ground_truth) == 0.0, preset.name


def test_duplicates_nms_against_file_order_cap() -> None:
    ground_truth = {"scene": [_obj("chair", "c1")]}
    right_low = _obj("chair", "c1", score=0.6, detection_score=0.95)
    wrong_high = _obj("chair", "c1", t=(0.3, 0, 0), score=0.9, detection_score=0.7)  # 30 cm off: a duplicate
    predictions = {"scene": [right_low, wrong_high]}
    # roca / sparc rank by score: the wrong one wins and NMS drops the right one.
    for preset in (ROCA, SPARC):
        result = evaluate_scenes(predictions, ground_truth, preset)
        assert result.instance == 0.0
        assert [outcome.status for outcome in result.outcomes] == ["suppressed", "evaluated"]
    # scan2cad keeps the file order: the right one comes first, the CAD's single appearance caps the other.
    result = evaluate_scenes(predictions, ground_truth, SCAN2CAD)
    assert result.instance == 1.0
    assert [outcome.status for outcome in result.outcomes] == ["evaluated", "over_cap"]
    # Ranking by the 2D detection score (the paper's ablation) reverses the order.
    assert _accuracy(SPARC.with_options(ranking_score="detection_score"), predictions, ground_truth) == 1.0
    # 50 cm apart the two are not duplicates, but the class cap (one chair) still keeps one only.
    far = {"scene": [right_low, _obj("chair", "c1", t=(0.5, 0, 0), score=0.9)]}
    statuses = [outcome.status for outcome in evaluate_scenes(far, ground_truth, ROCA).outcomes]
    assert statuses == ["over_cap", "evaluated"]


def test_equal_scores_keep_the_file_order_in_every_ranking() -> None:
    # Two predictions of one chair with the same score: the one listed first wins the NMS and the cap.
    ground_truth = {"scene": [_obj("chair", "c1")]}
    right = _obj("chair", "c1", score=0.8)
    wrong = _obj("chair", "c1", t=(0.3, 0, 0), score=0.8)
    for preset in (ROCA, SPARC, SCAN2CAD):
        assert _accuracy(preset, {"scene": [right, wrong]}, ground_truth) == 1.0, preset.name
        assert _accuracy(preset, {"scene": [wrong, right]}, ground_truth) == 0.0, preset.name


def test_nms_keeps_different_classes_and_far_rotations() -> None:
    ranked = [
        _obj("chair", "c"),
        _obj("table", "t"),  # another class
        _obj("chair", "c", yaw=90),  # 90 deg > 60 deg
        _obj("chair", "c", t=(0.1, 0, 0), yaw=30, s=(1.5, 1.5, 1.5)),  # duplicate of the first
    ]
    assert nms_3d(ranked, ROCA.nms, {}) == [0, 1, 2]


def test_detection_threshold_is_strict() -> None:
    ground_truth = {"scene": [_obj("chair", "c")]}
    at_threshold = {"scene": [_obj("chair", "c", detection_score=0.5)]}
    result = evaluate_scenes(at_threshold, ground_truth, SPARC)
    assert result.instance == 0.0 and result.outcomes[0].status == "below_threshold"


def test_scene_without_predictions() -> None:
    ground_truth = {"seen": [_obj("chair", "c")], "unseen": [_obj("chair", "c")]}
    predictions = {"seen": [_obj("chair", "c")]}
    assert _accuracy(ROCA, predictions, ground_truth) == pytest.approx(0.5)
    assert _accuracy(SPARC, predictions, ground_truth) == 1.0
    assert _accuracy(SCAN2CAD, predictions, ground_truth) == 1.0
    # A scene listed with no predictions counts as submitted.
    assert _accuracy(SPARC, {**predictions, "unseen": []}, ground_truth) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="have no ground truth"):
        evaluate_scenes({"elsewhere": []}, ground_truth, SPARC)


def test_bounding_box_centre_offset() -> None:
    # A CAD whose origin is at its bottom: the bounding-box centre is 0.5 m above it.
    centre = (0.0, 0.5, 0.0)
    ground_truth = {"scene": [_obj("cabinet", "cab", t=(1, 0, 2), centre=centre)]}
    at_origin = {"scene": [_obj("cabinet", "cab", t=(1, 0, 2))]}
    # The benchmark script compares with t - R (s * centre) = (1, -0.5, 2).
    at_benchmark_point = {"scene": [_obj("cabinet", "cab", t=(1, -0.5, 2))]}
    assert _accuracy(ROCA, at_origin, ground_truth) == 1.0
    assert _accuracy(SCAN2CAD, at_origin, ground_truth) == 0.0
    assert _accuracy(ROCA, at_benchmark_point, ground_truth) == 0.0
    assert _accuracy(SCAN2CAD, at_benchmark_point, ground_truth) == 1.0
    without_centre = {"scene": [WorldObject("cabinet", "cab", np.eye(3), (1, 0, 2), (1, 1, 1))]}
    with pytest.raises(ValueError, match="no CAD bounding-box centre"):
        evaluate_scenes(at_origin, without_centre, SCAN2CAD)


def test_scale_error_modes() -> None:
    ground_truth = {"scene": [_obj("sofa", "sofa", s=(2.0, 1.0, 1.0))]}
    # Ratios (1.4, 0.7, 0.95): |mean - 1| = 0.0167 passes, mean |ratio - 1| = 0.25 fails.
    predictions = {"scene": [_obj("sofa", "sofa", s=(2.8, 0.7, 0.95))]}
    assert _accuracy(ROCA, predictions, ground_truth) == 1.0
    assert _accuracy(SCAN2CAD, predictions, ground_truth) == 1.0
    assert _accuracy(SPARC, predictions, ground_truth) == 0.0
    # Ratios (1.3, 0.8, 0.95): 0.0167 and 0.1833, both within 20 %.
    close = {"scene": [_obj("sofa", "sofa", s=(2.6, 0.8, 0.95))]}
    assert _accuracy(SPARC, close, ground_truth) == 1.0


def test_bed_and_other_classes() -> None:
    lamp = "03636649"  # a ShapeNet synset outside the 9 classes
    ground_truth = {
        "scene": [_obj("bed", "bed", t=(0, 0, 0)), _obj("chair", "chair", t=(3, 0, 0)), _obj(lamp, "lamp", t=(6, 0, 0))]
    }
    predictions = {"scene": [_obj("bed", "bed"), _obj("chair", "chair", t=(3, 0, 0), yaw=90)]}
    for preset in (ROCA, SPARC):
        result = evaluate_scenes(predictions, ground_truth, preset)
        assert result.per_class == {"bed": 1.0, "chair": 0.0}
        assert result.class_mean == pytest.approx(0.5)
        assert result.benchmark_mean == 0.0  # no bed
        assert result.instance == pytest.approx(0.5)  # the lamp does not count
    result = evaluate_scenes(predictions, ground_truth, SCAN2CAD)
    assert result.per_class == {"chair": 0.0, OTHER: 0.5}  # bed and lamp are "other"
    assert result.total == {"chair": 1, OTHER: 2}
    assert result.class_mean == pytest.approx(0.25) and result.benchmark_mean == 0.0
    assert result.instance == pytest.approx(1 / 3)
    assert result.to_dict()["per_class"] == {"chair": 0.0, "other": 0.5}


def test_require_same_cad() -> None:
    ground_truth = {"scene": [_obj("chair", "a"), _obj("chair", "b", t=(4, 0, 0))]}
    other_model = {"scene": [_obj("chair", "b")]}
    assert _accuracy(SPARC, other_model, ground_truth) == pytest.approx(0.5)
    assert _accuracy(SPARC.with_options(require_same_cad=True), other_model, ground_truth) == 0.0


def test_greedy_match_takes_each_ground_truth_once() -> None:
    aligned = np.array([[True, True], [True, False], [True, True]])
    assert greedy_match(aligned) == [0, None, 1]


def test_missing_ranking_score_is_named() -> None:
    ground_truth = {"scene": [_obj("chair", "c")]}
    unscored = WorldObject("chair", "c", np.eye(3), (0, 0, 0), (1, 1, 1), detection_score=0.9, source="f1")
    with pytest.raises(ValueError, match="has no score; rank by 'detection_score'"):
        evaluate_scenes({"scene": [unscored]}, ground_truth, SPARC)


def _pose(obj_id: int, category: str, cad: str, R: np.ndarray, t, s=(1, 1, 1), **extra) -> ObjectPose:
    q = Rotation.from_matrix(R).as_quat()[[3, 0, 1, 2]]
    return ObjectPose(obj_id, category, cad, np.asarray(t, float), q, np.asarray(s, float), **extra)


def test_world_frame_from_bundles(tmp_path) -> None:
    # A chair at world (1, 0, 4) with yaw 30, seen by two cameras of one scan.
    R_world, t_world = _yaw(30.0), np.array([1.0, 0.0, 4.0])
    cameras = {"frame_a": (_yaw(0.0), np.zeros(3)), "frame_b": (_yaw(-40.0), np.array([0.5, 0.2, -1.0]))}
    predictions_dir = tmp_path / "out"
    for name, (R_cw, c) in cameras.items():
        folder = tmp_path / name
        folder.mkdir()
        cam_to_world = np.eye(4)
        cam_to_world[:3, :3], cam_to_world[:3, 3] = R_cw, c
        camera = {"K": [[500, 0, 320], [0, 500, 240], [0, 0, 1]], "width": 640, "height": 480}
        camera |= {"cam_to_world": cam_to_world.tolist(), "scene_id": "scan7"}
        (folder / "camera.json").write_text(json.dumps(camera))
        R_cam, t_cam = R_cw.T @ R_world, R_cw.T @ (t_world - c)
        gt = _pose(3, "chair", "chair_1", R_cam, t_cam)
        gt_record = {"id": 3, "category": "chair", "cad": "chair_1", "t": gt.t.tolist(), "q": gt.q.tolist()}
        (folder / "gt.json").write_text(json.dumps([gt_record | {"s": [1, 1, 1], "sym": "none"}]))
        (predictions_dir / name).mkdir(parents=True)
        prediction = gt_record | {"s": [1, 1, 1], "score": 0.8, "detection_score": 0.9}
        (predictions_dir / name / "predictions.json").write_text(json.dumps([prediction]))
    folders = [tmp_path / name for name in cameras]
    predictions = predictions_from_bundles(folders, predictions_dir)
    ground_truth = ground_truth_from_bundles(folders)
    assert list(predictions) == list(ground_truth) == ["scan7"]
    assert len(predictions["scan7"]) == 2 and len(ground_truth["scan7"]) == 1  # the object is taken once
    for obj in predictions["scan7"]:
        np.testing.assert_allclose(obj.R, R_world, atol=1e-9)
        np.testing.assert_allclose(obj.t, t_world, atol=1e-9)
    result = evaluate_scenes(predictions, ground_truth, SPARC)
    assert result.instance == 1.0
    assert [outcome.status for outcome in result.outcomes] == ["evaluated", "suppressed"]
    renamed = predictions_from_bundles(folders, predictions_dir, scene_of={"frame_a": "other_scan"})
    assert sorted(renamed) == ["other_scan", "scan7"]


# Per image and AP^mesh ----------------------------------------------------------------------------

WIDTH, HEIGHT = 64, 48
K = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def cads(tmp_path_factory) -> CadIndex:
    folder = tmp_path_factory.mktemp("cads")
    trimesh.creation.box(extents=(1.0, 1.0, 1.0)).export(folder / "cube.obj")
    entries = [
        CadEntry("cube", folder / "cube.obj", "chair", "none"),
        CadEntry("cube_t", folder / "cube.obj", "table", "none"),
    ]
    return CadIndex(entries, source=folder, cache=SampleCache(folder / "samples"))


@pytest.fixture(scope="module")
def caster(cads) -> RayCaster:
    return RayCaster(cads)


def _render(caster: RayCaster, poses: list[ObjectPose]):
    """The full render of ground-truth poses (object i has instance id i + 1)."""
    objects = [
        PlacedObject(index + 1, pose.cad, Rotation.from_quat(pose.q[[1, 2, 3, 0]]).as_matrix(), pose.t, pose.s)
        for index, pose in enumerate(poses)
    ]
    return render_full(caster, objects, None, K, WIDTH, HEIGHT)


def _frame(caster, ground_truth, predictions, occlude=None) -> ImageFrame:
    """A frame whose sensor depth is the render of its ground truth, except 1 m (something in front) at `occlude`."""
    depth = _render(caster, ground_truth).depth.astype(np.float32)
    if occlude is not None:
        depth[occlude] = 1.0
    return ImageFrame("frame", K, WIDTH, HEIGHT, depth, ground_truth, predictions)


def test_per_image_filters(cads, caster) -> None:
    visible = _pose(1, "chair", "cube", np.eye(3), (0.0, 0.0, 3.0))  # columns 22..41
    centre_outside = _pose(2, "chair", "cube", np.eye(3), (-2.0, 0.0, 3.0))  # centre at u = -1.8; columns 0..10 show
    occluded = _pose(3, "chair", "cube", np.eye(3), (1.5, 0.0, 4.0))  # columns 43..60
    partly_hidden = _pose(4, "chair", "cube", np.eye(3), (0.0, 1.6, 5.0))  # columns 26..37, rows 36..46
    occluder = np.zeros((HEIGHT, WIDTH), dtype=bool)
    occluder[:, 43:56] = True  # most of object 3
    occluder[36:, 26:30] = True  # about a third of object 4
    frame = _frame(caster, [visible, centre_outside, occluded, partly_hidden], [], occlude=occluder)
    assessment = assess_frame(frame, caster, cads)
    assert assessment.centre_inside.tolist() == [True, False, True, True]
    assert assessment.depth_agreement[0] == 1.0 and assessment.depth_agreement[1] == 1.0
    assert assessment.depth_agreement[2] < 0.5 <= assessment.depth_agreement[3] < 1.0
    assert assessment.visible.tolist() == [True, False, False, True]
    # The visible cube's front face spans x, y in [-0.5, 0.5] at z = 2.5: u, v in 31.5 +- 10 and 23.5 +- 10.
    np.testing.assert_allclose(assessment.gt_boxes[0], [21.5, 13.5, 41.5, 33.5], atol=1.0)


def test_per_image_accuracy_and_association(cads, caster) -> None:
    left = _pose(1, "chair", "cube", np.eye(3), (-0.8, 0.0, 3.0))
    right = _pose(2, "chair", "cube", np.eye(3), (0.8, 0.0, 3.0))
    behind = _pose(3, "table", "cube_t", np.eye(3), (0.0, 0.0, 6.0))  # seen between the chairs
    exact_right = _pose(0, "chair", "cube", np.eye(3), (0.8, 0.0, 3.0), score=0.9, detection_score=0.8)
    turned_left = _pose(1, "chair", "cube", _yaw(45.0), (-0.75, 0.0, 3.0), score=0.4, detection_score=0.9)
    boxed_table = _pose(2, "table", "cube_t", np.eye(3), (0.0, 0.0, 6.0), score=0.5, detection_score=0.9)
    boxed_table.extras["bbox"] = [20.0, 12.0, 44.0, 36.0]
    ground_truth = [left, right, behind]
    hide_table = _render(caster, ground_truth).instance == 3
    frame = _frame(caster, ground_truth, [exact_right, turned_left, boxed_table], occlude=hide_table)
    assessment = assess_frame(frame, caster, cads)
    assert assessment.visible.tolist() == [True, True, False]
    assert assessment.assigned == [1, 0, None]  # largest box IoU within the class; the hidden table takes no part
    assert assessment.correct.tolist() == [True, False, False]
    np.testing.assert_allclose(assessment.pred_boxes[2], [20.0, 12.0, 44.0, 36.0])
    # Without a detection box the prediction's box is its rendered silhouette's: the right chair's box.
    np.testing.assert_allclose(assessment.pred_boxes[0], assessment.gt_boxes[1])
    skip = evaluate_per_image([frame], cads, caster=caster)
    assert skip.per_class == {"chair": 0.5} and skip.unmatched == {"table": 1}
    wrong = evaluate_per_image([frame], cads, unmatched="wrong", caster=caster)
    assert wrong.per_class == {"chair": 0.5, "table": 0.0}
    assert wrong.class_mean == pytest.approx(0.25) and wrong.instance == pytest.approx(1 / 3)
    objects, correct = skip.scored_predictions()
    assert [obj.score for obj in objects] == [0.9, 0.4] and correct.tolist() == [True, False]


def test_the_strict_protocol_matches_one_to_one_and_reports_recall(cads, caster) -> None:
    left = _pose(1, "chair", "cube", np.eye(3), (-0.8, 0.0, 3.0))
    right = _pose(2, "chair", "cube", np.eye(3), (0.8, 0.0, 3.0))
    # The right chair predicted twice, both aligned; the left one not at all.
    first = _pose(0, "chair", "cube", np.eye(3), (0.8, 0.0, 3.0), score=0.9, detection_score=0.9)
    repeat = _pose(1, "chair", "cube", np.eye(3), (0.82, 0.0, 3.0), score=0.8, detection_score=0.9)
    frame = _frame(caster, [left, right], [repeat, first])
    paper = evaluate_per_image([frame], cads, caster=caster)
    assert paper.instance == 1.0  # the lenient rule: both predictions take the right chair
    strict = strict_per_image(paper.assessments)
    assert strict.total == {"chair": 2} and strict.correct == {"chair": 1}
    assert strict.instance == 0.5 and strict.recall == 0.5 and strict.objects == {"chair": 2}
    # Equal scores keep the file's order: the first listed takes the chair.
    tied = _frame(caster, [right], [replace(first, score=0.5), replace(repeat, t=np.array([1.5, 0.0, 3.0]), score=0.5)])
    assert strict_per_image(evaluate_per_image([tied], cads, caster=caster).assessments).correct == {"chair": 1}


def test_reproject_world_ground_truth_into_a_frame() -> None:
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3], cam_to_world[:3, 3] = (
        _yaw(-40.0) @ Rotation.from_euler("x", 10, degrees=True).as_matrix(),
        (1, 2, 3),
    )
    world = [_obj("table", "t", t=(2.0, 0.5, 6.0), yaw=25.0, s=(1.2, 0.7, 0.9), sym="2")]
    (pose,) = reproject_ground_truth(world, cam_to_world)
    back = WorldObject.from_pose(pose, cam_to_world)
    np.testing.assert_allclose(back.R, world[0].R, atol=1e-12)
    np.testing.assert_allclose(back.t, world[0].t, atol=1e-12)
    assert (pose.id, pose.sym, pose.cad) == (0, "2", "t")
    np.testing.assert_allclose(pose.s, [1.2, 0.7, 0.9])


def test_per_image_needs_depth(cads, caster) -> None:
    frame = ImageFrame("no_depth", K, WIDTH, HEIGHT, None, [], [])
    with pytest.raises(ValueError, match="no_depth: no sensor depth"):
        assess_frame(frame, caster, cads)


def test_f_scores_of_shifted_points() -> None:
    gt = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], axis=1)
    pred = gt + np.array([0.6, 0.0, 0.0])
    # Nine points of each set lie 0.4 from the other set, one lies 0.6 away.
    np.testing.assert_allclose(f_scores(pred, gt, [0.3, 0.5, 0.7]), [0.0, 0.9, 1.0])
    np.testing.assert_allclose(f_scores(gt, gt, [0.3]), [1.0])


def test_average_precision_all_point_interpolation() -> None:
    # Precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: area = 1/2 * 1 + 1/2 * 2/3.
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1], bool), 2) == pytest.approx(5 / 6)
    assert average_precision(np.array([]), np.array([], bool), 3) == 0.0


def test_ap_mesh(cads, caster) -> None:
    gt = _pose(1, "chair", "cube", np.eye(3), (0.0, 0.0, 3.0))
    exact = _pose(0, "chair", "cube", np.eye(3), (0.0, 0.0, 3.0), score=0.8, detection_score=0.8)
    frame = _frame(caster, [gt], [exact])
    perfect = evaluate_ap_mesh([assess_frame(frame, caster, cads)], cads, n_points=2000)
    for rho in perfect.rhos:
        assert perfect.mean_ap50(rho) == 1.0 and perfect.mean_ap_mean(rho) == 1.0
    # A prediction 60 cm too far ranked above the exact one: a false positive, then a true positive.
    too_far = _pose(1, "chair", "cube", np.eye(3), (0.0, 0.0, 3.6), score=0.9, detection_score=0.9)
    far_f = model_f_scores(WorldObject.from_pose(too_far), WorldObject.from_pose(gt), cads, perfect.rhos, n_points=2000)
    assert np.all(far_f < 0.5)
    frame = _frame(caster, [gt], [exact, too_far])
    results = evaluate_ap_mesh([assess_frame(frame, caster, cads)], cads, n_points=2000)
    for rho in results.rhos:
        np.testing.assert_allclose(results.ap[rho]["chair"], 0.5)  # precision 1/2 at recall 1, every tau
    assert results.to_dict()["rho"]["0.5"]["ap50"] == pytest.approx(0.5)


# Calibration --------------------------------------------------------------------------------------


def test_accuracy_against_sorted_score() -> None:
    fraction, accuracy = accuracy_vs_score(np.array([0.9, 0.2, 0.7]), np.array([True, False, False]))
    np.testing.assert_allclose(fraction, [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(accuracy, [1.0, 0.5, 1 / 3])


def test_reliability_of_calibrated_and_overconfident_scores() -> None:
    scores, correct = [], []
    for level in range(5, 100, 10):  # 100 predictions at each score 0.05, 0.15, ..., with that many correct
        scores += [level / 100] * 100
        correct += [True] * level + [False] * (100 - level)
    diagram = reliability_diagram(np.array(scores), np.array(correct))
    assert diagram.ece == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(diagram.accuracy, np.arange(0.05, 1.0, 0.1))
    overconfident = reliability_diagram(np.full(10, 0.9), np.arange(10) < 5)
    assert overconfident.ece == pytest.approx(0.4)
    with pytest.raises(ValueError, match="scores must lie in"):
        reliability_diagram(np.array([1.5]), np.array([True]))


def test_plot_calibration(tmp_path) -> None:
    rng = np.random.default_rng(0)
    learned = rng.uniform(size=200)
    correct = rng.uniform(size=200) < learned
    path = plot_calibration(
        tmp_path / "calibration.png",
        correct,
        {"3D classification score": learned, "2D detection score": rng.uniform(size=200)},
    )
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 600


# Converters ---------------------------------------------------------------------------------------


def test_roca_predictions_round_trip(tmp_path) -> None:
    path = tmp_path / "per_frame_preds.json"
    record = {
        "score": 0.93,
        "bbox": [10.0, 20.0, 110.0, 220.0],
        "t": [0.1, -0.2, 2.5],
        "q": [0.7071068, 0.0, 0.7071068, 0.0],
        "s": [0.5, 0.9, 0.6],
        "category": "bookcase",
        "segmentation": {"size": [360, 480], "counts": "abc"},
        "scene_cad_id": ["02871439", "1d5e"],
    }
    path.write_text(json.dumps({"scene0011_00/color/000100.jpg": [record]}))
    frames = read_roca_predictions(path)
    (pose,) = frames["scene0011_00/color/000100.jpg"]
    assert (pose.category, pose.cad, pose.score, pose.detection_score) == ("bookshelf", "02871439_1d5e", 0.93, 0.93)
    assert pose.extras["bbox"] == record["bbox"]
    assert roca_frame("scene0011_00/color/000100.jpg") == ("scene0011_00", "000100")
    pose.score = 0.4  # a learned score survives the round trip
    again = read_roca_predictions(write_roca_predictions(tmp_path / "out.json", frames))
    (back,) = again["scene0011_00/color/000100.jpg"]
    assert (back.category, back.cad, back.score, back.detection_score) == ("bookshelf", "02871439_1d5e", 0.4, 0.93)
    np.testing.assert_allclose(back.q, pose.q)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"k/color/1.jpg": [{key: value for key, value in record.items() if key != "t"}]}))
    with pytest.raises(ConversionError, match=r"bad\.json: k/color/1\.jpg prediction #0: missing key"):
        read_roca_predictions(bad)


def test_scan2cad_csv_round_trip(tmp_path) -> None:
    csv_path = tmp_path / "scene0470_00.csv"
    csv_path.write_text("03001627,b4371c,0.96,2.19,0.45,-0.0820520,-0.0773053,0.7046859,0.7005063,1.17,1.29,1.04\n")
    (chair,) = read_scan2cad_csv(csv_path)
    assert (chair.category, chair.cad, chair.score) == ("chair", "03001627_b4371c", None)
    np.testing.assert_allclose(chair.t, [0.96, 2.19, 0.45])
    lamp = WorldObject("03636649", "03636649_x1", _yaw(70.0), (1, 2, 3), (0.5, 0.6, 0.7), score=0.7)
    written = write_scan2cad_submission(tmp_path / "submission", {"s1": [chair, lamp]}, with_score=False)
    back = read_scan2cad_submission(written)["s1"]
    assert [obj.cad for obj in back] == ["03001627_b4371c", "03636649_x1"] and back[1].category == "03636649"
    np.testing.assert_allclose(back[1].R, lamp.R, atol=1e-12)
    np.testing.assert_allclose(back[1].s, lamp.s)
    with_score = read_scan2cad_csv(write_scan2cad_csv(tmp_path / "scored.csv", [lamp], with_score=True))
    assert with_score[0].score == with_score[0].detection_score == 0.7
    # ROCA writes the synset as an integer; a header row is skipped.
    header = "catid_cad,id_cad,tx,ty,tz,qw,qx,qy,qz,sx,sy,sz\n3001627,m,0,0,0,1,0,0,0,1,1,1\n"
    (tmp_path / "header.csv").write_text(header)
    assert read_scan2cad_csv(tmp_path / "header.csv")[0].cad == "03001627_m"
    (tmp_path / "short.csv").write_text("03001627,m,0,0,0\n")
    with pytest.raises(ConversionError, match=r"short\.csv: row 1: expected 12 columns"):
        read_scan2cad_csv(tmp_path / "short.csv")


def _trs(translation, quaternion, scale) -> dict:
    return {"translation": translation, "rotation": quaternion, "scale": scale}


def test_scan2cad_annotations_and_benchmark(tmp_path) -> None:
    quarter_z = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]  # 90 deg about z
    model = {
        "catid_cad": "03001627",
        "id_cad": "chair9",
        "trs": _trs([1.0, 1.0, 0.0], quarter_z, [2.0, 1.0, 1.0]),
        "sym": "__SYM_ROTATE_UP_2",
        "bbox": [0.3, 0.4, 0.3],
        "center": [0.0, 0.1, 0.0],
    }
    lamp = model | {"catid_cad": "03636649", "id_cad": "lamp1", "sym": "__SYM_ROTATE_UP_INF"}
    annotations = [
        {"id_scan": "scene0001_00", "trs": _trs([1.0, 0.0, 0.0], quarter_z, [1, 1, 1]), "aligned_models": [model, lamp]}
    ]
    path = tmp_path / "full_annotations.json"
    path.write_text(json.dumps(annotations))
    (chair, lamp_obj) = read_scan2cad_annotations(path)["scene0001_00"]
    # inv(M_scan) @ M_model: rotations cancel; t = Rz(-90) ((1, 1, 0) - (1, 0, 0)) = (1, 0, 0).
    np.testing.assert_allclose(chair.R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(chair.t, [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(chair.s, [2.0, 1.0, 1.0])
    assert (chair.category, chair.cad, chair.sym) == ("chair", "03001627_chair9", "2")
    np.testing.assert_allclose(chair.centre, [0.0, 0.1, 0.0])
    assert (lamp_obj.category, lamp_obj.sym) == ("03636649", "inf")
    # The benchmark script's ground-truth translation: t - R (s * centre) = (1, -0.1, 0).
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "scene0001_00.csv").write_text("03001627,chair9,1,-0.1,0,1,0,0,0,2,1,1\n")
    predictions = read_scan2cad_submission(submission)
    result = evaluate_scenes(predictions, read_scan2cad_annotations(path), SCAN2CAD)
    assert result.per_class == {"chair": 1.0, OTHER: 0.0} and result.instance == pytest.approx(0.5)
    assert read_scan2cad_annotations(path, scenes=["elsewhere"]) == {}


# Report -------------------------------------------------------------------------------------------


def test_alignment_table() -> None:
    ground_truth = {"scene": [_obj("bed", "bed"), _obj("chair", "chair", t=(3, 0, 0))]}
    results = evaluate_scenes({"scene": [_obj("bed", "bed")]}, ground_truth, SPARC)
    rows = [method_row("Ours", results, time_ms=864.0), MethodRow("ROCA", {"chair": 0.131}, 0.184, 0.25, 53.0)]
    markdown = alignment_table_markdown(rows, results.total)
    lines = markdown.splitlines()
    assert lines[0].startswith("| Method | bathtub | bed | bin | bkshlf |") and lines[0].endswith("time [ms] |")
    assert lines[2] == "| Number of instances | 0 | 1 | 0 | 0 | 0 | 1 | 0 | 0 | 0 | 2 | 2 | - |"
    assert lines[3] == "| Ours | - | 100.0 | - | - | - | 0.0 | - | - | - | 50.0 | 50.0 | 864 |"
    assert lines[4].startswith("| ROCA | - | - | - | - | - | 13.1 |")
    table = alignment_table_json(rows, results.total)
    assert table["rows"][0]["per_class"]["bed"] == 100.0 and table["rows"][1]["time_ms"] == 53
    per_image = per_image_table_markdown([PerImageRow("Ours", {0.5: 0.27}, {0.5: 0.115}, 0.281, 0.313)])
    assert per_image.splitlines()[2] == "| Ours | 27.0 | 11.5 | 28.1 | 31.3 |"
