"""The nearest-sample lookup grid (`multisparc.cad.nearest`) against an exact kd tree, and the batched
verification scores against one pose at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from multisparc.cad import CadIndex
from multisparc.cad.nearest import NearestSampleGrid
from multisparc.geometry import quat_to_matrix
from multisparc.inference.depth_fit import IcpConfig, SurfaceSamples, detection_points, rotation_about, surface_pairs
from multisparc.inference.verification import geometric_scores

UP = np.array([0.0, -1.0, 0.0])


def test_grid_finds_the_exact_nearest_sample_of_points_near_a_chair(cads: CadIndex) -> None:
    samples = np.asarray(cads.points("chair0", 2000)[0], dtype=np.float64)
    grid = NearestSampleGrid(samples)
    rng = np.random.default_rng(0)
    # Points within a few cm of the surface (where a fit pairs them), and some far outside the grid.
    near = samples[rng.integers(0, len(samples), 3000)] + rng.normal(scale=0.03, size=(3000, 3))
    far = rng.normal(scale=3.0, size=(200, 3))
    tree = cKDTree(samples)
    exact_distance, exact = tree.query(near)
    found = grid.query(near)
    assert np.mean(found == exact) > 0.97
    # Where it is not the nearest, the sample found is at most a cell farther.
    extra = np.linalg.norm(near - samples[found], axis=1) - exact_distance
    assert extra.min() >= -1e-12 and extra.max() < grid.cell * np.sqrt(3)
    # Far points still get a sample (read at the grid's edge), not an out-of-range index.
    assert grid.query(far).min() >= 0 and grid.query(far).max() < len(samples)


def test_grid_takes_the_nearest_in_the_stretched_frame_of_a_scaled_model(cads: CadIndex) -> None:
    samples = np.asarray(cads.points("chair0", 2000)[0], dtype=np.float64)
    grid = NearestSampleGrid(samples)
    scale = np.array([1.3, 0.8, 1.1])  # the fits' models are stretched per axis
    rng = np.random.default_rng(1)
    near = samples[rng.integers(0, len(samples), 3000)] * scale + rng.normal(scale=0.03, size=(3000, 3))
    exact = cKDTree(samples * scale).query(near)[1]
    unstretched = near / scale
    # Nearness taken in the unstretched frame misses the exact sample far more often than in the stretched one.
    assert np.mean(grid.query(unstretched, scale) == exact) > 0.97
    assert np.mean(grid.query(unstretched) == exact) < np.mean(grid.query(unstretched, scale) == exact) - 0.05
    # One scale per point (the fits' models of several scales looked up at once) gives the same answers.
    per_point = np.broadcast_to(scale, near.shape)
    np.testing.assert_array_equal(grid.query(unstretched, per_point), grid.query(unstretched, scale))


def test_grid_refuses_samples_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        NearestSampleGrid(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"\(M, 3\)"):
        NearestSampleGrid(np.zeros((10, 2)))


def test_batched_geometric_scores_equal_one_pose_at_a_time(scene, cads: CadIndex) -> None:
    config = IcpConfig()
    gt = scene.gt[0]
    R_gt = quat_to_matrix(torch.as_tensor(gt.q)).numpy()
    points, _ = detection_points(scene.observation, scene.detections[0], config, np.random.default_rng(0))
    cad_points, cad_normals = (np.asarray(a, np.float64) for a in cads.points("chair0", config.model_points))
    # The true pose, one turned by 90 deg, one pushed 3 m away (behind the box: overlap but no fit).
    R = np.stack([R_gt, rotation_about(UP, np.pi / 2) @ R_gt, R_gt])
    t = np.stack([gt.t, gt.t, gt.t + np.array([0.0, 0.0, 3.0])])
    scales = [gt.s, gt.s * 0.9, gt.s]
    models = [SurfaceSamples(cad_points, cad_normals, s) for s in scales]
    args = (scene.observation.depth, scene.observation.camera.K, scene.detections[0].bbox, 0.05, 2.0)
    batched = geometric_scores(points, models, R, t, *args)
    single = [geometric_scores(points, [model], R[h : h + 1], t[h : h + 1], *args)[0] for h, model in enumerate(models)]
    np.testing.assert_allclose(batched, single, atol=1e-12)
    assert batched[0] > 0.8 and batched[0] > batched[1] + 0.3 and batched[2] < 0.05


def test_a_bounded_search_finds_the_same_pairs_within_the_bound(cads: CadIndex) -> None:
    cad_points, cad_normals = (np.asarray(a, np.float64) for a in cads.points("chair0", 2000))
    models = [SurfaceSamples(cad_points, cad_normals, s) for s in (np.ones(3), np.array([1.1, 0.9, 1.0]))]
    rng = np.random.default_rng(1)
    observed = cad_points[rng.integers(0, 2000, 500)] + rng.normal(scale=0.08, size=(500, 3)) + [0.0, 0.0, 3.0]
    R, t = np.stack([np.eye(3)] * 2), np.array([[0.0, 0.0, 3.0]] * 2)
    exact = surface_pairs(models, observed, R, t)
    bounded = surface_pairs(models, observed, R, t, bound=0.05)
    within = exact[0] < 0.05
    assert 0.2 < within.mean() < 0.9  # both kinds of point are tested
    np.testing.assert_array_equal(bounded[0][within], exact[0][within])
    for got, want in zip(bounded[1:], exact[1:], strict=True):
        np.testing.assert_array_equal(got[within], want[within])
    assert np.isinf(bounded[0][~within]).all() and np.isfinite(bounded[1]).all() and np.isfinite(bounded[2]).all()
