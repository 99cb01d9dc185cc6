"""Tests of the white depth noise estimate (`multisparc.inference.depth_noise`) and of the per-detection tau
it sets (`stages.detection_configs`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from multisparc.datasets.bundle import Camera, Detection, Observation
from multisparc.inference.depth_noise import MIN_TRIPLES, white_noise
from multisparc.inference.stages import PIPELINES, detection_configs

HEIGHT, WIDTH = 120, 160


def tilted_plane() -> np.ndarray:
    """The depth (H, W) metres of a floor-like plane seen at a slant: 2 to 3.5 m, exactly smooth."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    return 1.0 / (0.5 - 0.002 * rows + 0.0005 * cols)


def noisy(depth: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return depth + np.random.default_rng(seed).normal(0.0, sigma, depth.shape)


def test_white_noise_of_a_smooth_surface_is_recovered_within_five_percent() -> None:
    everywhere = np.ones((HEIGHT, WIDTH), dtype=bool)
    for sigma in (0.005, 0.02, 0.06):
        estimate = white_noise(noisy(tilted_plane(), sigma), everywhere)
        assert estimate == pytest.approx(sigma, rel=0.05)


def test_a_clean_surface_has_no_noise_and_depth_edges_barely_move_the_estimate() -> None:
    everywhere = np.ones((HEIGHT, WIDTH), dtype=bool)
    assert white_noise(tilted_plane(), everywhere) < 1e-4
    stepped = tilted_plane()
    stepped[:, WIDTH // 2 :] += 1.5  # an object's silhouette against the room: second differences of 0.75 m
    stepped[HEIGHT // 3 :, :] -= 0.8
    assert white_noise(noisy(stepped, 0.02), everywhere) == pytest.approx(0.02, rel=0.1)


def test_only_the_given_pixels_and_known_depths_count() -> None:
    depth = tilted_plane()
    depth[:, : WIDTH // 2] = noisy(depth, 0.05)[:, : WIDTH // 2]  # a noisy left half
    depth[:10] = 0.0  # unknown rows
    depth[10:20] = np.nan
    right = np.zeros_like(depth, dtype=bool)
    right[:, WIDTH // 2 + 1 :] = True
    assert white_noise(depth, right) < 1e-4
    assert white_noise(depth, ~right) == pytest.approx(0.05, rel=0.1)
    unknown = np.zeros_like(right)
    unknown[0:20, 5:40] = True  # no valid triple
    assert white_noise(depth, unknown) == 0.0
    # A run of n pixels along a row centres n row triples and n column triples.
    for n, known in ((MIN_TRIPLES // 2 - 1, False), ((MIN_TRIPLES + 1) // 2, True)):
        run = np.zeros_like(right)
        run[50, 5 : 5 + n] = True
        assert (white_noise(depth, run) > 0) == known


def _observation(depth: np.ndarray) -> Observation:
    K = np.array([[100.0, 0.0, WIDTH / 2], [0.0, 100.0, HEIGHT / 2], [0.0, 0.0, 1.0]])
    return Observation(np.zeros((HEIGHT, WIDTH, 3), np.uint8), Camera(K, WIDTH, HEIGHT), depth.astype(np.float32))


def test_each_detection_gets_a_tau_of_its_own_noise() -> None:
    """Noise of 4 cm on the right half: the detection there gets tau 2.5 x 4 cm, the one on the clean left half
    keeps the config's; a noisier detection is capped at half the ICP's max distance; noise_tau 0 changes
    nothing."""
    depth = tilted_plane()
    depth[:, WIDTH // 2 :] = noisy(depth, 0.04)[:, WIDTH // 2 :]
    depth[:40, WIDTH // 2 :] = noisy(tilted_plane(), 0.3, seed=1)[:40, WIDTH // 2 :]
    left = Detection(1, "chair", np.array([10.0, 40.0, 70.0, 110.0]), "a")
    right_mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    right_mask[50:110, 90:150] = True
    right = Detection(2, "chair", np.array([90.0, 50.0, 149.0, 109.0]), "b", mask=right_mask)
    noisiest = Detection(3, "chair", np.array([90.0, 0.0, 150.0, 39.0]), "c")
    stages = replace(PIPELINES["full"], noise_tau=2.5)
    configs = detection_configs(_observation(depth), [left, right, noisiest], stages)
    assert configs[0] is stages.icp
    assert configs[1].inlier_distance == pytest.approx(0.1, rel=0.1)
    assert replace(configs[1], inlier_distance=stages.icp.inlier_distance) == stages.icp
    assert configs[2].inlier_distance == 0.5 * stages.icp.max_distance
    assert all(config is PIPELINES["full"].icp for config in detection_configs(
        _observation(depth), [left, right, noisiest], replace(stages, noise_tau=0.0)
    ))
    with pytest.raises(ValueError, match="noise_tau"):
        replace(stages, noise_tau=-1.0)
