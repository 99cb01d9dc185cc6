"""Tests of multisparc.baselines: the ICP baseline on a rendered chair (`chair_scene`), bad depth, and the
named methods."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from chair_scene import HEIGHT, K_CAM, UP, WIDTH
from multisparc.baselines import (
    METHODS,
    IcpAligner,
    IcpConfig,
    detection_points,
    fit_score,
    make_method,
    method_spec,
    principal_yaw_offset,
)
from multisparc.datasets.bundle import ObjectPose, read_poses, write_json
from multisparc.geometry import matrix_to_quat, quat_to_matrix, rotation_error
from multisparc.inference import Aligner, InitialisationConfig, initial_poses
from multisparc.inference.depth_fit import SurfaceSamples, icp, rotation_about
from multisparc.inference.verification import free_space_violation
from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig, MultiSparcNet, NetOutput

INPUTS = InputConfig(n_bbox=120, n_cad=40)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pose_errors(pose: ObjectPose, gt: ObjectPose) -> tuple[float, float, float]:
    """Translation (m), rotation (deg) and mean per-axis scale error of a pose against the ground truth."""
    R, R_gt = (quat_to_matrix(torch.as_tensor(p.q, dtype=torch.float64)) for p in (pose, gt))
    rotation = math.degrees(float(rotation_error(R, R_gt, "none")))
    return float(np.linalg.norm(pose.t - gt.t)), rotation, float(np.mean(np.abs(pose.s / gt.s - 1)))


# ICP --------------------------------------------------------------------------------------------------


def test_icp_recovers_the_rendered_chair_from_the_initialisations(scene, cads) -> None:
    result = IcpAligner(cads).align(scene.observation, scene.detections)
    (pose,) = result.objects
    t_err, r_err, s_err = pose_errors(pose, scene.gt[0])
    assert t_err < 0.03 and r_err < 3.0 and s_err < 0.1, (t_err, r_err, s_err)
    # The initial pose is far off: the recovery is ICP's doing.
    init = initial_poses(scene.observation, scene.detections, cads, InitialisationConfig())
    start = ObjectPose(
        1,
        "chair",
        "chair0",
        init.poses.t[0, 0].numpy(),
        matrix_to_quat(init.poses.R[0, 0]).numpy(),
        init.poses.s[0, 0].numpy(),
    )
    assert pose_errors(start, scene.gt[0])[1] > 30.0
    # Shapes and scores: 3 steps (initial, ICP start, ICP result) x 4 hypotheses x 1 detection.
    assert result.trajectory.shape == (3, 4, 1) and result.logits.shape == (3, 4, 1)
    scores = result.hypothesis_scores[:, 0]
    assert np.all((scores >= 0) & (scores <= 1))
    assert result.chosen[0] == int(np.argmax(scores)) and pose.score == pytest.approx(scores.max(), abs=1e-6)
    assert pose.score > 0.6 and pose.detection_score == pytest.approx(0.9)
    # The backrest tells the chair from itself turned round: hypotheses left more than 20 deg off score far lower.
    R_gt = quat_to_matrix(torch.as_tensor(scene.gt[0].q, dtype=torch.float64))
    final_errors = np.degrees(rotation_error(result.trajectory.R[-1, :, 0], R_gt.expand(4, 3, 3), "none").numpy())
    wrong = final_errors > 20.0
    assert wrong.any() and (~wrong).any()
    assert scores[wrong].max() < pose.score - 0.3


@pytest.mark.parametrize("lookup", ["kdtree", "grid"])
def test_icp_pulls_perturbed_poses_onto_the_depth(scene, cads, lookup: str) -> None:
    config = IcpConfig(lookup=lookup)
    gt = scene.gt[0]
    R_gt = quat_to_matrix(torch.as_tensor(gt.q)).numpy()
    points, source = detection_points(scene.observation, scene.detections[0], config, np.random.default_rng(0))
    assert source == "mask" and len(points) == config.max_points
    cad_points, cad_normals = (np.asarray(a, np.float64) for a in cads.points("chair0", config.model_points))
    grid = cads.nearest_samples("chair0", config.model_points) if lookup == "grid" else None
    model = SurfaceSamples(cad_points, cad_normals, gt.s, grid)
    # Two perturbed starts fitted at once, and the first alone: the batch changes nothing.
    R = np.stack([rotation_about(UP, math.radians(angle)) @ R_gt for angle in (12.0, -9.0)])
    t = gt.t + np.array([[0.08, 0.0, -0.06], [-0.05, 0.0, 0.07]])
    offset = np.tile(gt.s * cads.centre("chair0"), (2, 1))
    R_fit, t_fit = icp(points, [model, model], R, t, offset, UP, config)
    R_one, t_one = icp(points, [model], R[:1], t[:1], offset[:1], UP, config)
    np.testing.assert_allclose(R_one[0], R_fit[0], atol=1e-12)
    np.testing.assert_allclose(t_one[0], t_fit[0], atol=1e-12)
    for R_h, t_h in zip(R_fit, t_fit, strict=True):
        yaw_error = math.degrees(float(rotation_error(torch.from_numpy(R_h), torch.from_numpy(R_gt), "none")))
        assert np.linalg.norm(t_h - gt.t) < 0.01 and yaw_error < 1.0
    R, t = R[0], t[0]
    tau = config.inlier_distance
    assert fit_score(points, model, R_gt, gt.t, tau) > 0.85 > 0.5 > fit_score(points, model, R, t, tau)
    # No point within tau gives 0.
    assert fit_score(points, model, R_gt, gt.t + np.array([0.0, 0.0, 2.0]), tau) == 0.0


def test_nan_and_zero_depth_are_skipped(scene, cads) -> None:
    depth = scene.observation.depth.astype(np.float32).copy()
    depth[::2] = np.nan  # every other row unknown
    depth[:, ::3] = 0.0  # every third column unknown
    depth[50:60, 70:80] = np.inf  # not a depth either
    holed = replace(scene.observation, depth=depth)
    points, _ = detection_points(holed, scene.detections[0], IcpConfig(max_points=10**6), np.random.default_rng(0))
    assert np.isfinite(points).all()
    rows, cols = np.nonzero(scene.detections[0].mask & np.isfinite(depth) & (depth > 0))
    assert len(points) == len(rows)
    # Points are the back-projected pixels: z is the depth, and they project back onto their pixels.
    uv = points @ K_CAM.T
    np.testing.assert_allclose(np.sort(uv[:, 0] / uv[:, 2]), np.sort(cols.astype(float)), atol=1e-6)
    np.testing.assert_allclose(np.sort(points[:, 2]), np.sort(depth[rows, cols].astype(float)), rtol=1e-6)
    (pose,) = IcpAligner(cads).align(holed, scene.detections).objects
    t_err, r_err, _ = pose_errors(pose, scene.gt[0])
    assert t_err < 0.03 and r_err < 3.0, (t_err, r_err)


def test_back_faces_keep_icp_from_pulling_a_noisy_thin_board_towards_the_camera(scene, cads) -> None:
    """The front face of a 2 cm board seen square on at 2 m with 2 cm depth noise, ICP started at the true
    pose: the points behind the board's mid-plane find its back face nearest. Dropping them (facing pairs
    only) leaves the points in front, which pull the board towards the camera by more than the noise;
    pairing them with the back face (`IcpConfig.back_faces`) keeps it within a centimetre."""
    rng = np.random.default_rng(0)
    front = np.stack([rng.uniform(-0.35, 0.35, 800), rng.uniform(-0.35, 0.35, 800), np.full(800, 1.99)], axis=1)
    observed = front + np.array([0.0, 0.0, 1.0]) * rng.normal(0.0, 0.02, (800, 1))
    board = trimesh.creation.box(extents=(0.8, 0.8, 0.02))
    points, index = trimesh.sample.sample_surface_even(board, 6000, seed=0)
    model = SurfaceSamples(np.asarray(points), np.asarray(board.face_normals[index]), np.ones(3))
    R, t = np.diag([1.0, -1.0, -1.0])[None], np.array([[0.0, 0.0, 2.0]])  # CAD +Z (front) towards the camera

    def depth_moved(back_faces: bool) -> float:
        up = np.array([0.0, -1.0, 0.0])
        _, fitted = icp(observed, [model], R, t, np.zeros((1, 3)), up, IcpConfig(back_faces=back_faces))
        return float(fitted[0, 2] - t[0, 2])

    assert depth_moved(False) < -0.025
    assert abs(depth_moved(True)) < 0.012
    # The baseline with the switch (method icp-back-faces) still aligns the clean rendered chair.
    assert make_method("icp-back-faces", cads).config.back_faces
    (pose,) = make_method("icp-back-faces", cads).align(scene.observation, scene.detections).objects
    t_err, r_err, _ = pose_errors(pose, scene.gt[0])
    assert t_err < 0.03 and r_err < 3.0, (t_err, r_err)


def test_too_few_points_keep_the_initial_pose_with_score_zero(scene, cads) -> None:
    depth = np.full((HEIGHT, WIDTH), np.nan, dtype=np.float32)
    x1, y1 = scene.detections[0].bbox[:2].astype(int)
    depth[y1 : y1 + 2, x1 : x1 + 5] = 2.5  # 10 valid pixels < min_points
    blind = replace(scene.observation, depth=depth)
    points, source = detection_points(blind, scene.detections[0], IcpConfig(), np.random.default_rng(0))
    assert points.shape == (0, 3) and source == "fallback"
    result = IcpAligner(cads).align(blind, scene.detections)
    init = initial_poses(blind, scene.detections, cads, InitialisationConfig())
    (pose,) = result.objects
    assert pose.score == 0.0 and result.chosen[0] == 0
    np.testing.assert_allclose(pose.t, init.poses.t[0, 0].numpy(), atol=1e-12)
    np.testing.assert_allclose(pose.q, matrix_to_quat(init.poses.R[0, 0]).numpy(), atol=1e-12)
    assert np.isfinite(result.logits).all()


def test_without_a_mask_the_box_points_serve(scene, cads) -> None:
    unmasked = [replace(scene.detections[0], mask=None)]
    points, source = detection_points(scene.observation, unmasked[0], IcpConfig(), np.random.default_rng(0))
    assert source == "box" and len(points) == IcpConfig().max_points
    (pose,) = IcpAligner(cads).align(scene.observation, unmasked).objects
    t_err, r_err, _ = pose_errors(pose, scene.gt[0])
    assert t_err < 0.1 and r_err < 10.0, (t_err, r_err)


def test_principal_yaw_offset_snaps_to_the_long_axis_modulo_90_degrees() -> None:
    up = np.array([0.0, -1.0, 0.0])
    axis = np.array([1.0, 0.0, 0.0])
    rng = np.random.default_rng(0)
    along = rng.uniform(-1.0, 1.0, 500)
    across = rng.uniform(-0.1, 0.1, 500)
    for degrees, expected in ((30.0, 30.0), (70.0, -20.0), (-100.0, -10.0)):
        direction = rotation_about(up, math.radians(degrees)) @ axis
        side = np.cross(up, direction)
        points = along[:, None] * direction + across[:, None] * side + rng.normal(0, 0.01, (500, 1)) * up
        assert math.degrees(principal_yaw_offset(points, up, axis, 1.2)) == pytest.approx(expected, abs=1.0)
    blob = rng.normal(size=(2000, 3))
    assert principal_yaw_offset(blob, up, axis, 1.2) == 0.0


def test_free_space_violation_counts_model_points_in_front_of_the_depth() -> None:
    depth = np.full((HEIGHT, WIDTH), 3.0, dtype=np.float32)
    depth[:, :10] = np.nan
    rays = np.linalg.inv(K_CAM) @ np.array([[40.0, 60.0, 1.0], [120.0, 60.0, 1.0], [5.0, 60.0, 1.0]]).T
    in_front, behind, unknown = rays.T * np.array([[2.0], [3.5], [1.0]])
    assert free_space_violation(np.stack([in_front, behind, unknown]), depth, K_CAM, 0.05) == pytest.approx(0.5)
    assert free_space_violation(np.stack([behind, unknown]), depth, K_CAM, 0.05) == 0.0


def test_icp_result_writes_predictions_like_the_network(scene, cads, tmp_path) -> None:
    result = IcpAligner(cads).align(scene.observation, scene.detections)
    write_json(tmp_path / "predictions.json", result.to_predictions())
    (pose,) = read_poses(tmp_path / "predictions.json")
    assert pose.id == 1 and pose.cad == "chair0" and 0 <= pose.score <= 1
    assert len(pose.extras["hypothesis_scores"]) == 4 and len(pose.extras["iterations"]) == 3
    np.testing.assert_allclose(pose.t, result.objects[0].t)
    assert json.loads(json.dumps(result.diagnostics()))["timings"]["total"] > 0


def test_icp_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="inlier_distance"):
        IcpConfig(inlier_distance=0.5, max_distance=0.3)
    with pytest.raises(ValueError, match="max_points"):
        IcpConfig(max_points=0)


# Named methods ------------------------------------------------------------------------------------------


def tiny_network(seed: int = 0) -> tuple[MultiSparcNet, InputConfig]:
    """A randomly initialised small network with a non-zero head (non-trivial updates)."""
    torch.manual_seed(seed)
    model = MultiSparcNet(replace(ModelConfig.cpu(), n_blocks=2))
    torch.nn.init.normal_(model.decoder.out.weight, std=0.05)
    return model, INPUTS


class PreferThird(MultiSparcNet):
    """A network's updates with 3 added to the logit of item 2, which is hypothesis 2 when the objects of
    an image fit one item (joint mode, at most n_mul objects)."""

    def __init__(self, base: MultiSparcNet) -> None:
        super().__init__(base.config)
        self.load_state_dict(base.state_dict())

    def forward(self, tokens, object_mask, token_mask=None, rotations=None) -> NetOutput:
        output = super().forward(tokens, object_mask, token_mask, rotations)
        bonus = torch.zeros_like(output.logit)
        bonus[2] = 3.0
        return NetOutput(output.update, output.logit + bonus)


def test_methods_are_the_table_rows() -> None:
    assert list(METHODS) == [
        "multisparc", "multisparc-exact", "multisparc-paper", "multisparc-no-room", "+start", "+mask", "+verify",
        "+fit", "single", "2d-score", "initial", "icp", "icp-back-faces",
    ]
    assert method_spec("multisparc").aligner_options["pipeline"] == "full"
    assert method_spec("multisparc-no-room").aligner_options["pipeline"] == "full-no-room"
    assert method_spec("multisparc-exact").aligner_options["pipeline"] == "exact"
    assert {METHODS[name].aligner_options["pipeline"] for name in ("multisparc-paper", "single", "2d-score")} == {
        "paper"
    }
    assert method_spec("2d-score").ranking_score == "detection_score"
    assert {name for name, spec in METHODS.items() if not spec.needs_network} == {"icp", "icp-back-faces"}
    with pytest.raises(ValueError, match="unknown method 'sparc'"):
        method_spec("sparc")


def test_network_methods_select_and_refine_as_named(scene, cads) -> None:
    with pytest.raises(ValueError, match="needs a trained network"):
        make_method("multisparc", cads)
    assert isinstance(make_method("icp", cads), IcpAligner)
    model, inputs = tiny_network()
    detections = [*scene.detections, replace(scene.detections[0], id=2, bbox=scene.detections[0].bbox + 3.0)]
    biased = (PreferThird(model), inputs)
    joint, first = (
        make_method(name, cads, biased).align(scene.observation, detections)
        for name in ("multisparc-paper", "2d-score")
    )
    # Same refinement; multisparc-paper takes the best-scored hypothesis (2), 2d-score the first initialisation.
    np.testing.assert_allclose(first.logits, joint.logits, atol=1e-6)
    np.testing.assert_array_equal(joint.chosen, [2, 2])
    np.testing.assert_array_equal(first.chosen, [0, 0])
    for k in range(2):
        np.testing.assert_allclose(first.objects[k].t, first.trajectory.t[-1, 0, k].numpy(), atol=1e-12)
        np.testing.assert_allclose(joint.objects[k].t, joint.trajectory.t[-1, 2, k].numpy(), atol=1e-12)
    assert float((first.trajectory.t[-1] - first.trajectory.t[0]).abs().max()) > 1e-3  # the refinement moved
    # initial: no refinement, one scoring pass over the initial poses.
    initial = make_method("initial", cads, (model, inputs)).align(scene.observation, detections)
    init = initial_poses(scene.observation, detections, cads, InitialisationConfig())
    assert initial.trajectory.shape == (1, 4, 2)
    np.testing.assert_allclose(initial.trajectory.t[0].numpy(), init.poses.t.numpy(), atol=1e-12)
    # single: every object alone, so the second (shifted) detection does not change the first one's result.
    single = make_method("single", cads, (model, inputs)).align(scene.observation, detections)
    alone = Aligner(model, inputs, cads, mode="single", pipeline="paper").align(scene.observation, detections[:1])
    np.testing.assert_allclose(single.logits[:, :, 0], alone.logits[:, :, 0], atol=1e-5)
    with_other = make_method("multisparc-paper", cads, (model, inputs)).align(scene.observation, detections)
    assert np.abs(with_other.logits[:, :, 0] - alone.logits[:, :, 0]).max() > 1e-6  # joint: the objects interact
    # multisparc: the same refinement, then the verification and the depth fit as one more step.
    full = make_method("multisparc", cads, (model, inputs)).align(scene.observation, detections)
    assert full.stages == ["room_depth", "depth_mask", "verify", "fit", "depth_only", "grid_lookup"]
    assert full.trajectory.shape == (5, 4, 2)
    np.testing.assert_allclose(full.logits[:4], with_other.logits, atol=1e-6)
    exact = make_method("multisparc-exact", cads, (model, inputs)).align(scene.observation, detections)
    assert [*exact.stages, "grid_lookup"] == full.stages
    np.testing.assert_allclose(exact.logits[:4], full.logits[:4], atol=1e-9)  # the fits differ, not the network
