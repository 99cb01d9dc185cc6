"""Scene bundle I/O: round trips, unknown values, and clear errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multisparc.categories import category_info, scale_range, typical_scale
from multisparc.datasets.bundle import (
    BundleError,
    Camera,
    Detection,
    ObjectPose,
    Observation,
    SceneBundle,
    read_bundle,
    write_bundle,
)
from multisparc.datasets.pixels import ImagePixelSource

H, W = 24, 32


def make_bundle(with_mask: bool = True) -> SceneBundle:
    rng = np.random.default_rng(0)
    K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    mask = np.zeros((H, W), dtype=bool)
    mask[5:15, 8:20] = True
    normals = rng.normal(size=(H, W, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    rows, cols = np.mgrid[0:H, 0:W]
    rays = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones((H, W))], axis=-1)
    normals *= np.where(np.sum(normals * rays, axis=-1, keepdims=True) > 0, -1, 1).astype(np.float32)  # face the camera
    obs = Observation(
        image=rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8),
        camera=Camera(K=K, width=W, height=H, cam_to_world=np.eye(4), up=np.array([0.0, -1.0, 0.0])),
        depth=rng.uniform(1, 4, size=(H, W)).astype(np.float32),
        normals=normals,
    )
    dets = [
        Detection(
            id=3,
            category="chair",
            bbox=np.array([8.0, 5, 19, 14]),
            cad="c1",
            score=0.9,
            mask=mask if with_mask else None,
        )
    ]
    gt = [
        ObjectPose(
            id=3,
            category="chair",
            cad="c1",
            t=np.array([0.1, 0.2, 2.5]),
            q=np.array([1.0, 0, 0, 0]),
            s=np.array([1.0, 1.1, 0.9]),
            sym="none",
        )
    ]
    return SceneBundle(name="scene", observation=obs, detections=dets, gt=gt)


def test_round_trip(tmp_path: Path) -> None:
    bundle = make_bundle()
    write_bundle(tmp_path / "scene", bundle)
    back = read_bundle(tmp_path / "scene")
    np.testing.assert_array_equal(back.observation.image, bundle.observation.image)
    np.testing.assert_array_equal(back.observation.depth, bundle.observation.depth)
    np.testing.assert_allclose(back.observation.normals, bundle.observation.normals, atol=1e-6)
    np.testing.assert_array_equal(back.observation.camera.K, bundle.observation.camera.K)
    np.testing.assert_array_equal(back.detections[0].mask, bundle.detections[0].mask)
    assert back.detections[0].bbox.tolist() == [8.0, 5, 19, 14]
    np.testing.assert_allclose(back.gt[0].s, [1.0, 1.1, 0.9])
    assert back.gt[0].sym == "none"


def test_unknown_depth_becomes_zero_and_png_depth_is_millimetres(tmp_path: Path) -> None:
    bundle = make_bundle()
    bundle.observation.depth[0, 0] = np.nan
    scene = write_bundle(tmp_path / "scene", bundle)
    assert read_bundle(scene).observation.depth[0, 0] == 0.0
    (scene / "depth.npy").unlink()
    millimetres = np.full((H, W), 2500, dtype=np.uint16)
    Image.fromarray(millimetres).save(scene / "depth.png")
    np.testing.assert_allclose(read_bundle(scene).observation.depth, 2.5)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("camera.json", "{not json", "malformed JSON at line 1"),
        ("camera.json", json.dumps({"K": [[1, 0], [0, 1]], "width": W, "height": H}), "K must be a 3x3"),
        (
            "detections.json",
            json.dumps([{"id": 1, "category": "chair", "bbox": [5, 5, 5, 9], "cad": "c"}]),
            "empty box",
        ),
        (
            "detections.json",
            json.dumps([{"id": 1, "category": "lamp", "bbox": [1, 1, 5, 9], "cad": "c"}]),
            "unknown category 'lamp'",
        ),
        ("detections.json", json.dumps([{"id": 1, "bbox": [1, 1, 5, 9], "cad": "c"}]), "missing key(s) category"),
        (
            "gt.json",
            json.dumps([{"id": 1, "category": "chair", "cad": "c", "t": [0, 0, 1], "q": [2, 0, 0, 0], "s": [1, 1, 1]}]),
            "unit quaternion",
        ),
    ],
)
def test_malformed_files_are_named(tmp_path: Path, file: str, content: str, message: str) -> None:
    scene = write_bundle(tmp_path / "scene", make_bundle())
    (scene / file).write_text(content)
    with pytest.raises(BundleError) as err:
        read_bundle(scene)
    assert file in str(err.value)
    assert message in str(err.value)


def test_missing_and_mismatched_files(tmp_path: Path) -> None:
    scene = write_bundle(tmp_path / "scene", make_bundle())
    np.save(scene / "depth.npy", np.zeros((H + 1, W), dtype=np.float32))
    with pytest.raises(BundleError, match=r"depth.npy: depth has shape \(25, 32\)"):
        read_bundle(scene)
    (scene / "image.png").unlink()
    with pytest.raises(BundleError, match=r"image\.png: file not found"):
        read_bundle(scene)
    with pytest.raises(BundleError, match="directory not found"):
        read_bundle(tmp_path / "nowhere")


def test_image_pixel_source_reads_known_pixels() -> None:
    bundle = make_bundle()
    source = ImagePixelSource(bundle.observation, bundle.detections)
    pixels = np.array([[10, 6], [0, 0], [19, 14]])
    data = source.sample(pixels, np.zeros(3, dtype=int))
    obs = bundle.observation
    np.testing.assert_allclose(data.depth, obs.depth[[6, 0, 14], [10, 0, 19]])
    np.testing.assert_allclose(data.rgb[1], obs.image[0, 0] / 255.0)
    assert data.mask.tolist() == [1.0, 0.0, 1.0]
    box_only = make_bundle(with_mask=False)
    data = ImagePixelSource(box_only.observation, box_only.detections).sample(pixels, np.zeros(3, dtype=int))
    assert data.mask.tolist() == [1.0, 0.0, 1.0]


def test_pixel_source_needs_depth() -> None:
    bundle = make_bundle()
    bundle.observation.depth = None
    with pytest.raises(ValueError, match="no depth map"):
        ImagePixelSource(bundle.observation, bundle.detections)


def test_category_scales() -> None:
    info = category_info("bookcase")
    assert info.name == "bookshelf"
    extent = np.array(info.typical_size) / 2.0
    np.testing.assert_allclose(typical_scale("bookshelf", extent), 2.0)
    low, high = scale_range("chair", np.ones(3))
    assert np.all(low < high)
    with pytest.raises(ValueError, match="unknown category 'lamp'"):
        category_info("lamp")
