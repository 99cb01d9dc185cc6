"""Tests of multisparc.geometry: cameras and boxes, rotations, poses, updates and pose errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multisparc.geometry import (
    AlignmentThresholds,
    Pose,
    apply_update,
    axis_angle_y,
    backproject,
    backproject_depth,
    box_area,
    box_iou,
    clip_box,
    enlarge_box,
    geodesic_angle,
    is_aligned,
    matrix_to_quat,
    matrix_to_yaw_pitch_roll,
    pitch_roll_from_up,
    pixel_bearings,
    polar_to_translation,
    pose_errors,
    project,
    quat_to_matrix,
    random_rotation,
    rotation_error,
    scale_error,
    symmetry_rotations,
    translation_error,
    translation_to_polar,
    yaw_pitch_roll_to_matrix,
)

fast = settings(max_examples=50, deadline=None)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
F64 = torch.float64


def vec(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def intrinsics(fx: float = 500.0, fy: float = 480.0, cx: float = 320.0, cy: float = 240.0) -> torch.Tensor:
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=F64)


def rotation_x(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=F64)


def random_pose(seed: int, shape: tuple[int, ...] = (4,)) -> Pose:
    generator = torch.Generator().manual_seed(seed)
    R = random_rotation(shape, generator=generator, dtype=F64)
    t = torch.randn(*shape, 3, generator=generator, dtype=F64) + torch.tensor([0.0, 0.0, 4.0], dtype=F64)
    s = 0.2 + 2 * torch.rand(*shape, 3, generator=generator, dtype=F64)
    return Pose(R, t, s)


# --- camera -------------------------------------------------------------------------------------


def test_project_known_point():
    uv, z = project(torch.tensor([1.0, 0.5, 2.0], dtype=F64), intrinsics())
    assert torch.allclose(uv, torch.tensor([570.0, 360.0], dtype=F64))
    assert z.item() == 2.0


def test_project_behind_camera_is_finite_and_reports_z():
    uv, z = project(torch.tensor([[0.3, 0.1, 0.0], [0.3, 0.1, -1.0]], dtype=F64), intrinsics())
    assert torch.isfinite(uv).all()
    assert z.tolist() == [0.0, -1.0]


@fast
@given(
    u=st.floats(0, 640),
    v=st.floats(0, 480),
    depth=st.floats(0.1, 20),
    f=st.floats(100, 1500),
    c=st.floats(100, 400),
)
def test_backproject_project_round_trip(u, v, depth, f, c):
    K = intrinsics(f, 0.9 * f, c, 0.8 * c)
    uv = torch.tensor([u, v], dtype=F64)
    point = backproject(uv, torch.tensor(depth, dtype=F64), K)
    uv_back, z = project(point, K)
    assert torch.allclose(uv_back, uv, atol=1e-8)
    assert z.item() == pytest.approx(depth)


def test_one_camera_per_image_serves_all_its_points():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(2, 5, 3, generator=generator, dtype=F64) + torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    K = torch.stack([intrinsics(), intrinsics(300.0, 300.0, 100.0, 80.0)])
    uv, _ = project(points, K)
    for b in range(2):
        assert torch.allclose(uv[b], project(points[b], K[b])[0])


def test_backproject_depth_matches_backproject_and_keeps_z():
    depth = torch.arange(12, dtype=F64).reshape(3, 4) + 1.0
    points = backproject_depth(depth, intrinsics())
    assert points.shape == (3, 4, 3)
    assert torch.equal(points[..., 2], depth)
    # Column 3, row 1 is the pixel centre (u, v) = (3, 1).
    expected = backproject(torch.tensor([3.0, 1.0], dtype=F64), depth[1, 3], intrinsics())
    assert torch.allclose(points[1, 3], expected)
    batched = backproject_depth(torch.stack([depth, 2 * depth]), torch.stack([intrinsics(), intrinsics()]))
    assert torch.allclose(batched[1], 2 * points)


def test_pixel_bearings_are_unit_rays():
    K = intrinsics()
    bearings = pixel_bearings(torch.tensor([[320.0, 240.0], [820.0, 240.0]], dtype=F64), K)
    assert torch.allclose(bearings[0], torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    # 500 px right of the principal point at fx = 500 is 45 degrees off axis.
    assert torch.allclose(bearings[1], torch.tensor([1.0, 0.0, 1.0], dtype=F64) / math.sqrt(2))


def test_camera_rejects_bad_shapes():
    with pytest.raises(ValueError, match="points"):
        project(torch.zeros(4, 2), intrinsics())
    with pytest.raises(ValueError, match="K"):
        project(torch.zeros(4, 3), torch.eye(4))


def test_enlarge_box_grows_each_side_by_half_the_fraction():
    box = torch.tensor([10.0, 20.0, 110.0, 70.0])
    assert enlarge_box(box, 0.1).tolist() == pytest.approx([5.0, 17.5, 115.0, 72.5])
    assert enlarge_box(box, 0.0).tolist() == box.tolist()


def test_clip_box_to_pixel_centres():
    boxes = torch.tensor([[-5.0, 10.0, 700.0, 500.0], [1.0, 2.0, 3.0, 4.0]])
    assert clip_box(boxes, 640, 480).tolist() == [[0.0, 10.0, 639.0, 479.0], [1.0, 2.0, 3.0, 4.0]]


def test_box_area_and_iou_known_values():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 5.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    assert box_area(a).tolist() == [100.0, 0.0]
    assert box_area(torch.tensor([5.0, 5.0, 1.0, 9.0])).item() == 0.0
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0].tolist() == pytest.approx([25.0 / 175.0, 1.0, 0.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0]
    empty = torch.zeros(1, 4)
    assert box_iou(empty, empty).item() == 0.0


# --- rotations ----------------------------------------------------------------------------------


@fast
@given(q=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: np.linalg.norm(q) > 0.1))
def test_quaternion_matrix_round_trip_is_canonical(q):
    q = torch.tensor(q, dtype=F64)
    R = quat_to_matrix(q)
    assert torch.allclose(R @ R.T, torch.eye(3, dtype=F64), atol=1e-12)
    assert torch.linalg.det(R).item() == pytest.approx(1.0)
    q_back = matrix_to_quat(R)
    assert q_back[0] >= 0
    unit = q / q.norm()
    assert torch.allclose(q_back, unit, atol=1e-9) or torch.allclose(q_back, -unit, atol=1e-9)


def test_quaternion_order_is_wxyz():
    quarter_turn_z = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)], dtype=F64)
    R = quat_to_matrix(quarter_turn_z)
    assert torch.allclose(R @ vec(1.0, 0.0, 0.0), vec(0.0, 1.0, 0.0))
    assert matrix_to_quat(torch.eye(3)).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_axis_angle_y_and_geodesic_angle():
    R = axis_angle_y(torch.tensor(math.pi / 2, dtype=F64))
    assert torch.allclose(R @ vec(0.0, 0.0, 1.0), vec(1.0, 0.0, 0.0))
    angles = torch.tensor([0.0, 0.3, 2.0, 3.0], dtype=F64)
    assert torch.allclose(geodesic_angle(torch.eye(3, dtype=F64), axis_angle_y(angles)), angles, atol=1e-6)
    assert geodesic_angle(rotation_x(0.5), rotation_x(-0.2)).item() == pytest.approx(0.7)


def test_random_rotation_is_a_reproducible_rotation():
    R = random_rotation((5, 2), generator=torch.Generator().manual_seed(3), dtype=F64)
    assert R.shape == (5, 2, 3, 3)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=F64).expand(5, 2, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(5, 2, dtype=F64))
    assert torch.equal(R, random_rotation((5, 2), generator=torch.Generator().manual_seed(3), dtype=F64))


def test_level_camera_sees_upright_model_upright():
    R = yaw_pitch_roll_to_matrix(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0))
    assert torch.allclose(R, torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    # Yaw turns about the model's own up axis, which stays image-up.
    R = yaw_pitch_roll_to_matrix(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0))
    assert torch.allclose(R[:, 1], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    # A camera looking down by 30 degrees sees gravity-up tilted towards itself (negative z).
    R = yaw_pitch_roll_to_matrix(torch.tensor(0.7), torch.tensor(math.radians(30)), torch.tensor(0.0))
    assert R[:, 1].tolist() == pytest.approx([0.0, -math.cos(math.radians(30)), -0.5], abs=1e-6)


@fast
@given(yaw=st.floats(-3.1, 3.1), pitch=st.floats(-1.5, 1.5), roll=st.floats(-3.1, 3.1))
def test_yaw_pitch_roll_round_trip_and_up_vector(yaw, pitch, roll):
    angles = [torch.tensor(a, dtype=F64) for a in (yaw, pitch, roll)]
    R = yaw_pitch_roll_to_matrix(*angles)
    recovered = matrix_to_yaw_pitch_roll(R)
    assert [a.item() for a in recovered] == pytest.approx([yaw, pitch, roll], abs=1e-6)
    up = R[:, 1]
    expected_up = [math.sin(roll) * math.cos(pitch), -math.cos(roll) * math.cos(pitch), -math.sin(pitch)]
    assert up.tolist() == pytest.approx(expected_up, abs=1e-9)
    assert [a.item() for a in pitch_roll_from_up(3 * up)] == pytest.approx([pitch, roll], abs=1e-6)


# --- poses --------------------------------------------------------------------------------------


def test_pose_apply_known_transform():
    pose = Pose(
        axis_angle_y(torch.tensor(math.pi / 2, dtype=F64)),
        torch.tensor([1.0, 2.0, 3.0], dtype=F64),
        torch.tensor([2.0, 1.0, 1.0], dtype=F64),
    )
    # Scale first (x doubles), then +X turns to -Z, then translate.
    out = pose.apply(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=F64))
    assert torch.allclose(out, torch.tensor([[1.0, 2.0, 1.0], [1.0, 3.0, 3.0]], dtype=F64))


@fast
@given(seed=seeds)
def test_pose_matrix_tqs_round_trips(seed):
    pose = random_pose(seed)
    from_matrix = Pose.from_matrix(pose.to_matrix())
    for a, b in zip((from_matrix.R, from_matrix.t, from_matrix.s), (pose.R, pose.t, pose.s), strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    t, q, s = pose.to_tqs()
    assert (q[..., 0] >= 0).all()
    from_tqs = Pose.from_tqs(t, q, s)
    assert torch.allclose(from_tqs.R, pose.R, atol=1e-10)
    points = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)
    assert torch.allclose(
        pose.to_matrix()[..., :3, :3] @ points.transpose(-1, -2),
        (pose.apply(points) - pose.t[:, None]).transpose(-1, -2),
    )
    assert torch.allclose(pose.inverse_apply(pose.apply(points)), points, atol=1e-10)


@fast
@given(seed=seeds)
def test_transformed_normals_stay_perpendicular_to_the_surface(seed):
    pose = random_pose(seed, shape=())
    generator = torch.Generator().manual_seed(seed + 1)
    tangents = torch.randn(2, 3, generator=generator, dtype=F64)
    normal = torch.linalg.cross(tangents[0], tangents[1])
    linear = pose.to_matrix()[:3, :3]
    turned_normal = pose.apply_normals(normal[None])[0]
    assert turned_normal.norm().item() == pytest.approx(1.0)
    assert (tangents @ linear.T @ turned_normal).abs().max() < 1e-9 * (1 + tangents.norm() ** 2)


def test_from_matrix_rejects_what_a_pose_cannot_express():
    mirrored = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="reflection"):
        Pose.from_matrix(mirrored)
    projective = torch.eye(4)
    projective[3, 2] = 1.0
    with pytest.raises(ValueError, match="last row"):
        Pose.from_matrix(projective)
    with pytest.raises(ValueError, match="zero"):
        Pose.from_matrix(torch.diag(torch.tensor([1.0, 0.0, 1.0, 1.0])))


def test_pose_rejects_mismatched_batch_shapes():
    with pytest.raises(ValueError, match="batch shapes differ"):
        Pose(torch.eye(3).expand(2, 3, 3), torch.zeros(3, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"Pose\.t"):
        Pose(torch.eye(3), torch.zeros(4), torch.ones(3))


def test_pose_batch_operations():
    pose = random_pose(0, shape=(2, 3))
    assert pose.shape == (2, 3)
    assert pose[1].shape == (3,)
    assert torch.equal(pose[1, 2].t, pose.t[1, 2])
    assert pose[..., 0].shape == (2,)
    assert pose[torch.tensor([True, False])].shape == (1, 3)
    assert Pose.cat([pose, pose[:1]]).shape == (3, 3)
    assert Pose.cat([pose, pose], dim=-1).shape == (2, 6)
    stacked = Pose.stack([pose, pose], dim=-1)
    assert stacked.shape == (2, 3, 2)
    assert torch.equal(stacked.R[..., 1, :, :], pose.R)
    assert pose.to(torch.float32).t.dtype == torch.float32
    assert pose.clone().t.data_ptr() != pose.t.data_ptr()
    R, t, s = pose.to_numpy()
    back = Pose.from_numpy(R, t, s)
    assert back.t.dtype == F64
    assert torch.equal(back.R, pose.R)
    assert Pose.identity((2,)).apply(torch.ones(2, 1, 3)).tolist() == [[[1.0, 1.0, 1.0]]] * 2


def test_polar_known_values():
    d, phi, theta = translation_to_polar(torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, -1.0, 1.0]]))
    assert d.tolist() == pytest.approx([2.0, 3.0, math.sqrt(2)])
    assert phi.tolist() == pytest.approx([0.0, math.pi / 2, 0.0])
    assert theta.tolist() == pytest.approx([0.0, 0.0, -math.pi / 4])


def test_polar_coordinates_at_and_near_the_pole_and_the_origin():
    t = torch.tensor([[0.0, 2.0, 0.0], [0.0, -1.5, 0.0], [0.0, 0.0, 0.0], [1e-7, 2.0, 0.0]], requires_grad=True)
    d, phi, theta = translation_to_polar(t)
    assert d.tolist() == pytest.approx([2.0, 1.5, 0.0, 2.0])
    assert phi[:3].tolist() == [0.0, 0.0, 0.0] and phi[3].item() == pytest.approx(math.pi / 2)
    assert theta.tolist() == pytest.approx([math.pi / 2, -math.pi / 2, 0.0, math.pi / 2])
    (d.sum() + phi[:3].sum() + theta.sum()).backward()
    assert torch.isfinite(t.grad).all()
    # The round trip holds at the poles too.
    assert torch.allclose(polar_to_translation(d, phi, theta)[:2], t[:2].detach(), atol=1e-6)


def test_a_pose_at_the_camera_centre_can_move_and_the_update_has_finite_gradients_there():
    pose = Pose(torch.eye(3).expand(2, 3, 3), torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.ones(2, 3))
    update = torch.zeros(2, 10, requires_grad=True)
    with torch.no_grad():
        update[:, 0] = 5.0  # grow the distance
    moved = apply_update(pose, update)
    assert moved.t[0].norm() > 0 and torch.allclose(moved.t[0], torch.tensor([0.0, 0.0, 2e-3]), atol=1e-4)
    moved.t.sum().backward()
    assert torch.isfinite(update.grad).all()


@fast
@given(d=st.floats(0.05, 30), phi=st.floats(-3.1, 3.1), theta=st.floats(-1.5, 1.5))
def test_polar_round_trip(d, phi, theta):
    t = polar_to_translation(*(torch.tensor(a, dtype=F64) for a in (d, phi, theta)))
    assert t.norm().item() == pytest.approx(d)
    assert [a.item() for a in translation_to_polar(t)] == pytest.approx([d, phi, theta], abs=1e-9)


@fast
@given(seed=seeds)
def test_zero_update_is_identity(seed):
    pose = random_pose(seed)
    updated = apply_update(pose, torch.zeros(4, 10, dtype=F64))
    for a, b in zip((updated.R, updated.t, updated.s), (pose.R, pose.t, pose.s), strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_known_update():
    pose = random_pose(7)
    update = torch.zeros(4, 10, dtype=F64)
    update[:, 0] = math.log(3.0)  # 2 sigmoid(log 3) = 1.5
    update[:, 1] = 0.1
    update[:, 5] = 1.0  # q_raw y: normalize([1, 0, 1, 0]) is a quarter turn about y
    update[:, 7] = math.log(3.0)
    updated = apply_update(pose, update)
    d, phi, theta = translation_to_polar(pose.t)
    d_new, phi_new, theta_new = translation_to_polar(updated.t)
    assert torch.allclose(d_new, 1.5 * d)
    assert torch.allclose(phi_new, phi + 0.1)
    assert torch.allclose(theta_new, theta)
    # The model's +X axis turns to where its -Z axis pointed.
    assert torch.allclose(updated.R[..., :, 0], -pose.R[..., :, 2], atol=1e-12)
    assert torch.allclose(updated.R[..., :, 1], pose.R[..., :, 1], atol=1e-12)
    assert torch.allclose(updated.s, pose.s * torch.tensor([1.5, 1.0, 1.0], dtype=F64))


def test_update_keeps_distance_when_only_angles_move():
    pose = random_pose(11)
    update = torch.zeros(4, 10, dtype=F64)
    update[:, 1:3] = 0.2
    assert torch.allclose(apply_update(pose, update).t.norm(dim=-1), pose.t.norm(dim=-1))


def test_update_is_differentiable():
    pose = random_pose(5)
    update = torch.zeros(4, 10, dtype=F64, requires_grad=True)
    points = torch.randn(4, 20, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    apply_update(pose, update).apply(points).square().sum().backward()
    assert torch.isfinite(update.grad).all()
    # q_raw[0] only rescales the quaternion before normalisation, so at zero it has no gradient.
    moving = [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert (update.grad[:, moving].abs().sum(0) > 0).all()
    assert (update.grad[:, 3] == 0).all()


def test_update_rejects_wrong_size():
    with pytest.raises(ValueError, match="update"):
        apply_update(random_pose(0), torch.zeros(4, 11, dtype=F64))


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sym", "turn_deg"), [("2", 180.0), ("4", 90.0), ("4", 270.0), ("inf", 40.0), ("inf", 250.0)])
def test_turn_by_the_symmetry_costs_nothing(sym, turn_deg):
    R_gt = random_rotation((6,), generator=torch.Generator().manual_seed(0), dtype=F64)
    R_pred = R_gt @ axis_angle_y(torch.tensor(math.radians(turn_deg), dtype=F64))
    assert rotation_error(R_pred, R_gt, sym).max().item() < 1e-6
    unsymmetric = math.radians(min(turn_deg, 360.0 - turn_deg))
    assert rotation_error(R_pred, R_gt, "none").tolist() == pytest.approx([unsymmetric] * 6, abs=1e-6)


@pytest.mark.parametrize(("turn_deg", "error_deg"), [(37.0, 3.0), (35.0, 5.0), (-2.0, 2.0)])
def test_a_continuous_symmetry_is_sampled_every_10_deg_as_the_benchmark_does(turn_deg, error_deg):
    # Scan2CAD's benchmark script and ROCA take the minimum over 36 turns of 10 deg for __SYM_ROTATE_UP_INF.
    R_gt = random_rotation((4,), generator=torch.Generator().manual_seed(1), dtype=F64)
    R_pred = R_gt @ axis_angle_y(torch.tensor(math.radians(turn_deg), dtype=F64))
    np.testing.assert_allclose(torch.rad2deg(rotation_error(R_pred, R_gt, "inf")).numpy(), error_deg, atol=1e-6)


@fast
@given(seed=seeds, turn=st.integers(-18, 18))
def test_continuous_symmetry_ignores_any_sampled_turn_about_up(seed, turn):
    R_gt = random_rotation((), generator=torch.Generator().manual_seed(seed), dtype=F64)
    tilted = R_gt @ rotation_x(0.4) @ axis_angle_y(torch.tensor(math.radians(10.0 * turn), dtype=F64))
    assert rotation_error(tilted, R_gt, "inf").item() == pytest.approx(0.4, abs=1e-9)


def test_known_rotation_errors():
    R_gt = random_rotation((), generator=torch.Generator().manual_seed(1), dtype=F64)
    tilt = rotation_x(math.radians(10))
    half_turn = axis_angle_y(torch.tensor(math.pi, dtype=F64))
    quarter_turn = axis_angle_y(torch.tensor(math.pi / 2, dtype=F64))
    assert math.degrees(rotation_error(R_gt @ tilt, R_gt, "none").item()) == pytest.approx(10.0)
    assert math.degrees(rotation_error(R_gt @ half_turn @ tilt, R_gt, "2").item()) == pytest.approx(10.0)
    assert rotation_error(R_gt @ half_turn, R_gt, "none").item() == pytest.approx(math.pi, abs=1e-6)
    assert math.degrees(rotation_error(R_gt @ quarter_turn, R_gt, "2").item()) == pytest.approx(90.0)
    assert rotation_error(R_gt @ rotation_x(math.pi), R_gt, "inf").item() == pytest.approx(math.pi)


@fast
@given(seed=seeds)
def test_errors_ignore_the_quaternion_sign(seed):
    pose, gt = random_pose(seed), random_pose(seed + 1)
    t, q, s = pose.to_tqs()
    flipped = Pose.from_tqs(t, -q, s)
    for sym in ("none", "2", "4", "inf"):
        assert rotation_error(flipped.R, pose.R, sym).max().item() < 1e-6
        to_gt = rotation_error(pose.R, gt.R, sym)
        assert torch.allclose(rotation_error(flipped.R, gt.R, sym), to_gt, atol=1e-6)


def test_symmetry_per_pose():
    R_gt = random_rotation((2,), generator=torch.Generator().manual_seed(2), dtype=F64)
    R_pred = R_gt @ axis_angle_y(torch.tensor(math.pi, dtype=F64))
    assert rotation_error(R_pred, R_gt, ["2", "none"]).tolist() == pytest.approx([0.0, math.pi], abs=1e-4)
    hypotheses = torch.stack([R_pred, R_gt], dim=1)  # (object, hypothesis)
    errors = rotation_error(hypotheses, R_gt[:, None], ["none", "2"])
    assert torch.allclose(errors, torch.tensor([[math.pi, 0.0], [0.0, 0.0]], dtype=F64), atol=1e-4)
    with pytest.raises(ValueError, match="leading dims"):
        rotation_error(R_pred, R_gt, ["2", "none", "4"])
    with pytest.raises(ValueError, match="unknown symmetry"):
        rotation_error(R_pred, R_gt, "3")


def test_symmetry_rotations():
    assert torch.equal(symmetry_rotations("none"), torch.eye(3)[None])
    assert symmetry_rotations("2").shape == (2, 3, 3)
    four = symmetry_rotations("4", dtype=F64)
    assert torch.allclose(four[1] @ four[1], symmetry_rotations("2", dtype=F64)[1], atol=1e-12)
    assert symmetry_rotations("inf").shape == (36, 3, 3)
    mixed = symmetry_rotations(["none", "4", "inf"], dtype=F64)
    assert mixed.shape == (3, 36, 3, 3)
    assert torch.equal(mixed[0], torch.eye(3, dtype=F64).expand(36, 3, 3))
    assert torch.equal(mixed[1, 4:8], four)


def test_translation_and_scale_errors_known_values():
    assert translation_error(torch.tensor([1.0, 2.0, 2.0]), torch.zeros(3)).item() == pytest.approx(3.0)
    s = torch.tensor([1.1, 0.9, 1.0])
    assert scale_error(s, torch.ones(3), "mean_ratio").item() == pytest.approx(0.0, abs=1e-7)
    assert scale_error(s, torch.ones(3), "per_axis").item() == pytest.approx(0.2 / 3)
    assert scale_error(
        torch.tensor([2.4, 1.2, 1.2]), torch.tensor([2.0, 1.0, 1.0]), "mean_ratio"
    ).item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="per_axis"):
        scale_error(s, s, "ratio")


def test_alignment_rule():
    gt = Pose.identity((4,), dtype=F64)
    R = torch.eye(3, dtype=F64).repeat(4, 1, 1)
    R[2] = rotation_x(math.radians(21))
    t = torch.tensor([[0.19, 0.0, 0.0], [0.21, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    s = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.3, 0.7, 1.0]], dtype=F64)
    pred = Pose(R, t, s)
    errors = pose_errors(pred, gt, "none", "per_axis")
    assert errors["r_deg"].tolist() == pytest.approx([0.0, 0.0, 21.0, 0.0], abs=1e-5)
    aligned = is_aligned(pred, gt, "none", AlignmentThresholds(), "per_axis")
    assert aligned.tolist() == [True, False, False, False]
    # The same scales pass the Scan2CAD mean-ratio rule, and a looser rotation threshold admits 21 deg.
    loose = is_aligned(pred, gt, "none", AlignmentThresholds(r_deg=25.0), "mean_ratio")
    assert loose.tolist() == [True, False, True, True]


def test_float32_stays_float32():
    pose = random_pose(4).to(torch.float32)
    updated = apply_update(pose, torch.full((4, 10), 0.1))
    assert {updated.R.dtype, updated.t.dtype, updated.s.dtype} == {torch.float32}
    errors = pose_errors(updated, pose, ["none", "2", "4", "inf"])
    assert all(e.dtype == torch.float32 and e.shape == (4,) for e in errors.values())
    uv, z = project(updated.t, intrinsics().float())
    assert uv.dtype == z.dtype == torch.float32
