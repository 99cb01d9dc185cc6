"""`multisparc convert scannet` on a miniature ScanNet + Scan2CAD + ShapeNet tree (`scannet_tree`): the bundles
give back the synthetic truth, the per-scene evaluation of hand-placed predictions gives the hand-made table,
and bad inputs get one-line errors naming the file."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from multisparc import cli
from multisparc.datasets.bundle import read_bundle, read_mask
from multisparc.datasets.scannet import find_scan, fit_intrinsics, list_frames
from multisparc.geometry import matrix_to_quat, quat_to_matrix
from scannet_tree import COLOUR_SIZE, DEPTH_SIZE, K_COLOUR, K_DEPTH, Tree, build_tree

SIZE = (480, 360)
SCAN1, SCAN2 = "scene0001_00", "scene0002_00"
# Annotation positions of the objects (`scannet_tree.make_objects`): A, B, D, C, E, F (other class), S (no CAD).
ID = {"A": 0, "B": 1, "D": 2, "C": 3, "E": 4}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return build_tree(tmp_path_factory.mktemp("scannet"))


def convert(tree: Tree, out: Path, *extra: str) -> int:
    argv = ["convert", "scannet", "--scannet", str(tree.scannet), "--scan2cad", str(tree.annotations)]
    return cli.main([*argv, "--shapenet", str(tree.shapenet), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def converted(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each scan converted on its own (scan 1 with oracle detections): scan -> output folder."""
    outs = {}
    for scan, extra in ((SCAN1, ["--oracle-detections"]), (SCAN2, [])):
        out = tmp_path_factory.mktemp(scan)
        start = time.perf_counter()
        assert convert(tree, out, "--scenes", scan, *extra) == 0
        print(f"{scan}: {time.perf_counter() - start:.1f} s")
        outs[scan] = out
    return outs


def rotation_deg(R1: np.ndarray, R2: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip((np.trace(R1.T @ R2) - 1) / 2, -1.0, 1.0)))


def truth_in_camera(tree: Tree, label: str, cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obj = tree.object(label)
    R_cw, c = cam_to_world[:3, :3], cam_to_world[:3, 3]
    return R_cw.T @ obj.R, R_cw.T @ (obj.t - c), obj.s


def bundles(tree: Tree, converted: dict[str, Path]):
    for scan, frames in tree.poses.items():
        for number, pose in frames.items():
            if pose is not None:
                yield scan, number, pose, converted[scan] / f"{scan}_{number:06d}"


def test_frames_with_inf_poses_are_skipped_and_both_layouts_read(tree: Tree, converted: dict[str, Path]) -> None:
    assert sorted(p.name for p in converted[SCAN1].iterdir()) == ["cads.json", f"{SCAN1}_000000", f"{SCAN1}_000001"]
    assert sorted(p.name for p in converted[SCAN2].iterdir()) == ["cads.json", f"{SCAN2}_000000", f"{SCAN2}_000100"]
    assert find_scan(tree.scannet, SCAN1).layout == "sensreader"
    assert find_scan(tree.scannet, SCAN2).layout == "frames_25k"
    assert [frame.number for frame in list_frames(find_scan(tree.scannet, SCAN1), every=2)] == [0, 2]
    assert [frame.number for frame in list_frames(find_scan(tree.scannet, SCAN2), every=100)] == [0, 100]


def test_ground_truth_poses_are_the_synthetic_truth_in_the_camera_frame(tree: Tree, converted: dict[str, Path]) -> None:
    for _, _, pose, folder in bundles(tree, converted):
        bundle = read_bundle(folder, with_detections=False)
        assert np.allclose(bundle.observation.camera.cam_to_world, pose, atol=1e-9)
        assert json.loads((folder / "camera.json").read_text())["scene_id"] == folder.name[:12]
        gt = {obj.id: obj for obj in bundle.gt}
        # A, B and D are seen; C stands behind D (its centre projects inside the image) and E beside the camera.
        assert sorted(gt) == [ID["A"], ID["B"], ID["D"]]
        for label in ("A", "B", "D"):
            R, t, s = truth_in_camera(tree, label, pose)
            got = gt[ID[label]]
            R_got = quat_to_matrix(torch.as_tensor(got.q, dtype=torch.float64)).numpy()
            assert np.linalg.norm(got.t - t) < 1e-3
            assert rotation_deg(R_got, R) < 0.1
            assert np.allclose(got.s, s, rtol=1e-6)
            assert got.cad == tree.object(label).cad and got.sym == tree.object(label).sym
        scene_gt = json.loads((folder / "scene_gt.json").read_text())
        assert [record["id"] for record in scene_gt] == [0, 1, 2, 3, 4]  # every kept object of the scan
        _, t_c, _ = truth_in_camera(tree, "C", pose)
        K = bundle.observation.camera.K
        u, v = (K @ t_c)[:2] / t_c[2]
        assert t_c[2] > 0 and 0 <= u < SIZE[0] and 0 <= v < SIZE[1]  # hidden, not out of view
        up = json.loads((folder / "camera.json").read_text())["up"]
        assert np.allclose(up, pose[:3, :3].T @ [0.0, 0.0, 1.0], atol=1e-9)


def test_depth_is_the_sensor_depth_registered_to_the_colour_camera(tree: Tree, converted: dict[str, Path]) -> None:
    for scan, number, _, folder in bundles(tree, converted):
        obs = read_bundle(folder, with_detections=False).observation
        assert obs.depth.shape == (SIZE[1], SIZE[0]) and obs.normals.shape == (SIZE[1], SIZE[0], 3)
        # The colour K scaled about pixel edges from the colour image (scan 2: the 1296 x 968 calibration of
        # its 640 x 480 JPEGs) to the bundle.
        factor = SIZE[0] / COLOUR_SIZE[0]
        assert obs.camera.K[0, 0] == pytest.approx(K_COLOUR[0, 0] * factor)
        assert obs.camera.K[0, 2] == pytest.approx((K_COLOUR[0, 2] + 0.5) * factor - 0.5)
        # Each bundle pixel holds the true depth of the depth pixel nearest to where its ray meets the depth image.
        rows, cols = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
        rays = np.stack([cols, rows, np.ones_like(cols)], -1).reshape(-1, 3) @ np.linalg.inv(obs.camera.K).T
        projected = rays @ K_DEPTH.T
        u = np.rint(projected[:, 0] / projected[:, 2]).astype(int)
        v = np.rint(projected[:, 1] / projected[:, 2]).astype(int)
        inside = (u >= 0) & (u < DEPTH_SIZE[0]) & (v >= 0) & (v < DEPTH_SIZE[1])
        truth = np.zeros(len(u))
        truth[inside] = tree.depths[scan][number][v[inside], u[inside]]
        depth = obs.depth.reshape(-1).astype(np.float64)
        valid = depth > 0
        assert valid.mean() > 0.95
        assert np.abs(depth[valid] - truth[valid]).max() <= 1e-3
        assert not np.any(~valid & inside & (truth > 0))  # no hole where the sensor saw something


def test_oracle_detections_are_the_visible_pixels_of_the_ground_truth(tree: Tree, converted: dict[str, Path]) -> None:
    folder = converted[SCAN1] / f"{SCAN1}_000000"
    bundle = read_bundle(folder)
    assert [(det.id, det.category, det.cad, det.score) for det in bundle.detections] == [
        (ID[label], tree.object(label).category, tree.object(label).cad, 1.0) for label in ("A", "B", "D")
    ]
    for det in bundle.detections:
        rows, cols = np.nonzero(det.mask)
        assert det.bbox.tolist() == [cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5]
        assert np.median(bundle.observation.depth[det.mask]) > 0.5
    assert read_mask(folder / "masks" / "0.png", SIZE[1], SIZE[0]).sum() == bundle.detections[0].mask.sum()
    assert json.loads((converted[SCAN2] / f"{SCAN2}_000000" / "detections.json").read_text()) == []


def test_cads_json_lists_the_shapenet_models_used(tree: Tree, converted: dict[str, Path]) -> None:
    cads = json.loads((converted[SCAN1] / "cads.json").read_text())
    assert sorted(cads) == sorted(tree.object(label).cad for label in "ABCDE")
    chair = cads[tree.object("A").cad]
    assert chair["category"] == "chair" and chair["sym"] == tree.object("A").sym
    assert (converted[SCAN1] / chair["path"] / "models" / "model_normalized.obj").is_file()


def test_fit_intrinsics_scales_a_full_size_calibration_and_refuses_others() -> None:
    K = fit_intrinsics(K_COLOUR, Path("k.txt"), (640, 480))
    assert K[0, 0] == pytest.approx(1170.19 * 640 / 1296) and K[1, 2] == pytest.approx((483.75 + 0.5) * 480 / 968 - 0.5)
    assert np.array_equal(fit_intrinsics(K_DEPTH, Path("k.txt"), DEPTH_SIZE), K_DEPTH)
    with pytest.raises(ValueError, match=r"^k\.txt: principal point"):
        fit_intrinsics(K_COLOUR, Path("k.txt"), (200, 480))


def pose_record(obj_id: int, category: str, cad: str, R: np.ndarray, t: np.ndarray, s: np.ndarray, score: float):
    q = matrix_to_quat(torch.as_tensor(R, dtype=torch.float64)).tolist()
    return {
        "id": obj_id,
        "category": category,
        "cad": cad,
        "t": t.tolist(),
        "q": q,
        "s": s.tolist(),
        "score": score,
        "detection_score": score,
    }


def hand_predictions(tree: Tree, folder: Path) -> Path:
    """Predictions of scan 1's two frames, placed by hand (scan frame offsets), in the camera frames:
    frame 0: chair A 5 cm off (matched), a "chair" where bin E stands (wrong class), cabinet D turned 30 deg
    about up (outside the thresholds); frame 1: chair A again 3 cm off (a duplicate: NMS drops it, or the
    per-CAD cap), table B 2 cm off (matched)."""
    poses = tree.poses[SCAN1]
    A, B, D, E = (tree.object(label) for label in "ABDE")
    turn = np.array([[math.cos(0.52), -math.sin(0.52), 0], [math.sin(0.52), math.cos(0.52), 0], [0, 0, 1]])
    frames = {
        0: [
            (A, "chair", A.cad, A.R, A.t + np.array([0.05, 0, 0]), A.s, 0.95),
            (E, "chair", A.cad, A.R, E.t, A.s, 0.7),
            (D, "cabinet", D.cad, turn @ D.R, D.t, D.s, 0.85),
        ],
        1: [
            (A, "chair", A.cad, A.R, A.t + np.array([0, 0.03, 0]), A.s, 0.8),
            (B, "table", B.cad, B.R, B.t + np.array([0, 0, 0.02]), B.s, 0.9),
        ],
    }
    for number, predictions in frames.items():
        R_cw, c = poses[number][:3, :3], poses[number][:3, 3]
        records = [
            pose_record(index, category, cad, R_cw.T @ R, R_cw.T @ (np.asarray(t) - c), s, score)
            for index, (_, category, cad, R, t, s, score) in enumerate(predictions)
        ]
        target = folder / f"{SCAN1}_{number:06d}"
        target.mkdir(parents=True)
        (target / "predictions.json").write_text(json.dumps(records))
    return folder


@pytest.mark.parametrize("preset", ["sparc", "roca", "scan2cad"])
def test_per_scene_evaluation_of_hand_placed_predictions(
    tree: Tree, converted: dict[str, Path], tmp_path: Path, preset: str
) -> None:
    out = converted[SCAN1]
    predictions = hand_predictions(tree, tmp_path / "pred")
    argv = ["evaluate", "--scenes", str(out), "--cads", str(out / "cads.json"), "--predictions", f"hand={predictions}"]
    assert cli.main([*argv, "--preset", preset, "--out", str(tmp_path / "eval"), "--no-ap-mesh"]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    scores = results["methods"]["hand"] if "methods" in results else results["hand"]
    per_scene = scores["per_scene"]
    # Scan 1 has chairs A and C, table B, cabinet D and bin E (F is of no class, S has no CAD): chair A and
    # table B are aligned, D is 30 deg off, the "chair" at E is of the wrong class, C and E are not predicted.
    bin_name = "trashbin" if preset == "scan2cad" else "bin"
    assert per_scene["total"] == {bin_name: 1, "cabinet": 1, "chair": 2, "table": 1}
    assert per_scene["correct"] == {bin_name: 0, "cabinet": 0, "chair": 1, "table": 1}
    assert per_scene["class_mean"] == pytest.approx(0.375)
    assert per_scene["instance"] == pytest.approx(0.4)
    assert per_scene["n_scenes"] == 1
    # Per image: A (twice) and B right, D wrong; the "chair" at E, outside frame 0's image, is associated
    # with nothing and left out.
    assert scores["per_image"]["instance"] == pytest.approx(0.75)


def test_bad_inputs_get_one_line_errors_naming_the_file(
    tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scannet = tmp_path / "scannet"
    shutil.copytree(tree.scannet / SCAN1, scannet / SCAN1)
    base = ["convert", "scannet", "--scannet", str(scannet), "--scan2cad", str(tree.annotations)]
    base += ["--shapenet", str(tree.shapenet), "--scenes", SCAN1, "--every", "2"]  # frames 0 and 2 (inf pose)

    def error(out: str, *extra: str) -> str:
        capsys.readouterr()
        assert cli.main([*base, "--out", str(tmp_path / out), *extra]) == 2
        message = capsys.readouterr().err.strip()
        assert "\n" not in message and "Traceback" not in message
        return message.removeprefix("multisparc convert: error: ")

    assert error("a", "--strict").startswith(str(tree.shapenet / "04256520" / "sofaS" / "models"))
    (scannet / SCAN1 / "depth" / "0.png").unlink()
    assert error("b") == f"{scannet / SCAN1 / 'depth' / '0.png'}: file not found"
    shutil.copy(tree.scannet / SCAN1 / "depth" / "0.png", scannet / SCAN1 / "depth" / "0.png")
    intrinsics = scannet / SCAN1 / "intrinsic" / "intrinsic_depth.txt"
    intrinsics.write_text("577.6 0 319.5\n0 577.6 239.5\n")
    assert error("c").startswith(f"{intrinsics}: K must be a 3x3 (or 4x4) matrix")
    intrinsics.write_text("577.6 0 319.5 0\n0 577.6 239.5 0\n0 0 1 0\n0 0 0 2\n")
    assert error("d").startswith(f"{intrinsics}: a 4x4 intrinsic matrix must be [[K, 0], [0, 1]]")
    base[base.index(SCAN1)] = "scene0099_00"
    assert error("e") == f"{tree.annotations}: scan scene0099_00 is not annotated (none of its 2 scans)"


def test_missing_cads_are_skipped_with_a_count(tree: Tree, converted: dict[str, Path], capsys) -> None:
    out = converted[SCAN1]
    capsys.readouterr()
    assert convert(tree, out, "--scenes", SCAN1) == 0  # a rerun keeps what is there
    printed = capsys.readouterr().out
    assert "0 frame(s) written, 2 already there, 1 skipped for an inf/NaN pose" in printed
    assert "1 object(s) of other classes and 1 of 1 CAD(s) missing from the ShapeNet folder left out" in printed
