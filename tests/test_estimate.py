"""`multisparc estimate`: photos become scene bundles with predicted metric depth, normals and EXIF intrinsics.

The real loading and inference code runs on a tiny, randomly initialised Depth Anything network of the real
architecture (a 4-layer Dinov2 backbone of width 16), saved with its image processor to a folder and loaded
through `--weights`: nothing is downloaded. Its depth is meaningless but shaped as the real one's (a sigmoid
times 20 m), which is what the bundle's checks and the normals see. EXIF intrinsics are checked against
focal lengths written into test JPEGs; every failure is one line naming its cause.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multisparc import cli
from multisparc.datasets.bundle import read_bundle
from multisparc.datasets.normals import pixel_rays
from multisparc.datasets.rgbd import scale_intrinsics
from multisparc.estimate.depth_model import DEFAULT_MODEL
from multisparc.estimate.intrinsics import (
    DEFAULT_FOV_DEG,
    EXIF_IFD,
    FOCAL_LENGTH,
    FOCAL_LENGTH_35MM,
    FOCAL_PLANE_RESOLUTION_UNIT,
    FOCAL_PLANE_X_RESOLUTION,
    PIXEL_X_DIMENSION,
    photo_intrinsics,
)

MAX_DEPTH_M = 20  # Depth Anything V2's indoor metric head: sigmoid x 20 m


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny metric Depth Anything network and its image processor, as `save_pretrained` writes them."""
    pytest.importorskip("transformers")
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        image_size=56,
        patch_size=14,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 8, 8, 8],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type="metric",
        max_depth=MAX_DEPTH_M,
    )
    torch.manual_seed(0)
    network = DepthAnythingForDepthEstimation(config)
    with torch.no_grad():  # the initialisation makes a nearly constant depth: stir it so that it varies
        for parameter in network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    folder = tmp_path_factory.mktemp("tiny-depth-anything")
    network.save_pretrained(folder)
    # The real models' preprocessor_config.json, at 56 instead of 518 pixels.
    processor = {
        "image_processor_type": "DPTImageProcessor",
        "do_resize": True,
        "size": {"height": 56, "width": 56},
        "keep_aspect_ratio": True,
        "ensure_multiple_of": 14,
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "do_pad": False,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def photo(path: Path, width: int = 64, height: int = 48, exif: dict[int, object] | None = None) -> Path:
    """A smooth colour photo (a gradient with a disc) of width x height, with the Exif sub-IFD tags `exif`."""
    rows, cols = np.mgrid[0:height, 0:width]
    disc = (cols - width / 2) ** 2 + (rows - height / 2) ** 2 < (height / 3) ** 2
    image = np.stack([255 * cols / width, 255 * rows / height, 200 * disc], axis=-1).astype(np.uint8)
    tags = Image.Exif()
    if exif:
        tags[EXIF_IFD] = exif
    Image.fromarray(image).save(path, exif=tags)
    return path


def estimate(*args: str | Path) -> int:
    return cli.main(["estimate", *map(str, args)])


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("multisparc estimate: error:")
    return err


# Intrinsics ----------------------------------------------------------------------------------------------


def test_35mm_equivalent_focal_length_gives_k_by_the_diagonal(tmp_path: Path) -> None:
    # 28 mm equivalent on a 64 x 48 photo: f = 28 * hypot(64, 48) / hypot(36, 24) = 28 * 80 / 43.267 px.
    path = photo(tmp_path / "a.jpg", exif={FOCAL_LENGTH_35MM: 28, FOCAL_LENGTH: 4.2})
    got = photo_intrinsics(path, 64, 48)
    assert got.K[0, 0] == pytest.approx(51.772, abs=1e-3)
    assert got.K[1, 1] == got.K[0, 0]
    assert (got.K[0, 2], got.K[1, 2]) == (31.5, 23.5)
    assert "35 mm" in got.source
    # A 3:2 photo at 36 mm equivalent sees 2 atan(18 / 36) = 53.13 deg across.
    path = photo(tmp_path / "b.jpg", 60, 40, exif={FOCAL_LENGTH_35MM: 36})
    assert photo_intrinsics(path, 60, 40).horizontal_fov_deg == pytest.approx(53.130, abs=1e-3)


@pytest.mark.parametrize(
    ("resolution", "unit", "stored_width", "focal_px"),
    [
        (1000.0, 3, None, 400.0),  # 1000 px/cm = 100 px/mm, 4 mm lens
        (2540.0, 2, None, 400.0),  # 2540 px/inch = 100 px/mm
        (1000.0, 3, 128, 200.0),  # the camera wrote 128 px wide; the file was halved since
    ],
)
def test_focal_length_with_the_sensors_pixel_pitch(
    tmp_path: Path, resolution: float, unit: int, stored_width: int | None, focal_px: float
) -> None:
    tags: dict[int, object] = {
        FOCAL_LENGTH: 4.0,
        FOCAL_PLANE_X_RESOLUTION: resolution,
        FOCAL_PLANE_RESOLUTION_UNIT: unit,
    }
    if stored_width is not None:
        tags[PIXEL_X_DIMENSION] = stored_width
    got = photo_intrinsics(photo(tmp_path / "a.jpg", exif=tags), 64, 48)
    assert got.K[0, 0] == pytest.approx(focal_px)
    assert "4 mm" in got.source


def test_without_exif_the_default_field_of_view_and_fov_overrides_exif(tmp_path: Path) -> None:
    plain = photo(tmp_path / "plain.png")
    got = photo_intrinsics(plain, 64, 48)
    assert DEFAULT_FOV_DEG == 60.0
    assert got.K[0, 0] == pytest.approx(32 / math.tan(math.radians(30)))  # 55.43 px
    assert got.horizontal_fov_deg == pytest.approx(60.0)
    assert "default 60 deg" in got.source
    # 35 mm equivalent 0 means "unknown" in EXIF: the default again.
    assert photo_intrinsics(photo(tmp_path / "zero.jpg", exif={FOCAL_LENGTH_35MM: 0}), 64, 48).K[0, 0] == got.K[0, 0]
    exif = photo(tmp_path / "exif.jpg", exif={FOCAL_LENGTH_35MM: 28})
    assert photo_intrinsics(exif, 64, 48, fov_deg=90.0).K[0, 0] == pytest.approx(32.0)


def test_a_photo_held_upright_is_turned_as_viewers_show_it(weights: Path, tmp_path: Path) -> None:
    # Stored 64 x 48 with orientation 6 (turn 90 deg clockwise to view): the bundle is the 48 x 64 upright view.
    path = photo(tmp_path / "portrait.jpg", 64, 48, exif={FOCAL_LENGTH_35MM: 28})
    with Image.open(path) as image:
        stored = np.asarray(image)
        tags = image.getexif()
    tags[0x0112] = 6
    Image.fromarray(stored).save(path, exif=tags, quality=100)
    upright = np.asarray(Image.open(path).transpose(Image.Transpose.ROTATE_270))
    assert upright.shape == (64, 48, 3)
    out = tmp_path / "out"
    assert estimate(path, "--out", out, "--weights", weights) == 0
    obs = read_bundle(out / "portrait", with_detections=False).observation
    assert obs.image.shape == (64, 48, 3) and obs.depth.shape == (64, 48)
    np.testing.assert_array_equal(obs.image, upright)
    # The focal length in pixels is the stored image's (the diagonal is the same); the centre is the upright's.
    np.testing.assert_allclose(obs.camera.K, [[51.772, 0, 23.5], [0, 51.772, 31.5], [0, 0, 1]], atol=1e-3)


# The command ---------------------------------------------------------------------------------------------


def test_help_names_the_default_model_its_size_and_licence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["estimate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert DEFAULT_MODEL in text.replace("- ", "-")
    assert "99 MB" in text and "Apache-2.0" in text and "CC-BY-NC-4.0" in text
    assert "pip install 'multisparc[estimate]'" in text


def test_photos_become_bundles_of_metric_depth_normals_and_exif_intrinsics(weights: Path, tmp_path: Path) -> None:
    jpeg = photo(tmp_path / "room.jpg", 64, 48, exif={FOCAL_LENGTH_35MM: 28})
    png = photo(tmp_path / "desk.png", 40, 30)
    out = tmp_path / "out"
    assert estimate(jpeg, png, "--out", out, "--weights", weights, "--device", "cpu") == 0
    for path, (width, height) in ((jpeg, (64, 48)), (png, (40, 30))):
        bundle = read_bundle(out / path.stem, with_detections=False)
        obs = bundle.observation
        assert (obs.camera.width, obs.camera.height) == (width, height)
        assert obs.image.shape == (height, width, 3)
        assert obs.depth.shape == (height, width) and obs.depth.dtype == np.float32
        assert np.all(np.isfinite(obs.depth)) and np.all(obs.depth > 0) and np.all(obs.depth <= MAX_DEPTH_M)
        assert obs.depth.std() > 1e-3  # the network's output, not a constant
        lengths = np.linalg.norm(obs.normals, axis=-1)
        known = lengths > 0
        assert known.mean() > 0.9
        np.testing.assert_allclose(lengths[known], 1.0, atol=1e-5)
        rays = pixel_rays(height, width, obs.camera.K)
        assert np.all(np.sum(obs.normals * rays, axis=-1)[known] < 0)  # facing the camera
        assert json.loads((out / path.stem / "detections.json").read_text()) == []
    np.testing.assert_array_equal(
        read_bundle(out / "desk", with_detections=False).observation.image, np.asarray(Image.open(png))
    )
    K_jpeg = read_bundle(out / "room", with_detections=False).observation.camera.K
    assert K_jpeg[0, 0] == pytest.approx(51.772, abs=1e-3)
    K_png = read_bundle(out / "desk", with_detections=False).observation.camera.K
    assert K_png[0, 0] == pytest.approx(20 / math.tan(math.radians(30)))
    record = json.loads((out / "room" / "estimate.json").read_text())
    assert record["model"] == str(weights) and "35 mm" in record["intrinsics"]


def test_large_photos_are_scaled_down_with_their_k_and_boxes(weights: Path, cads, tmp_path: Path) -> None:
    jpeg = photo(tmp_path / "big.jpg", 64, 48, exif={FOCAL_LENGTH_35MM: 28})
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"bbox": [7.5, 3.5, 39.5, 43.5], "category": "chair", "cad": "chair0"}]))
    out = tmp_path / "out"
    argv = ["--out", out, "--weights", weights, "--max-side", "32", "--detections", boxes, "--cads", cads.source]
    assert estimate(jpeg, *argv) == 0
    bundle = read_bundle(out / "big")
    obs = bundle.observation
    assert obs.depth.shape == (24, 32) and obs.image.shape == (24, 32, 3)
    full = photo_intrinsics(jpeg, 64, 48).K
    np.testing.assert_allclose(obs.camera.K, scale_intrinsics(full, (64, 48), (32, 24)))
    [det] = bundle.detections
    np.testing.assert_allclose(det.bbox, [3.5, 1.5, 19.5, 21.5])  # (x + 0.5) / 2 - 0.5
    assert (det.category, det.cad) == ("chair", "chair0")


@pytest.mark.slow
def test_a_photo_with_boxes_goes_through_align(weights: Path, cads, scene, tmp_path: Path) -> None:
    """The documented path: photo -> estimate --detections -> align, on the rendered chair scene's image."""
    from multisparc.inference import shipped_checkpoint

    jpeg = tmp_path / "chair.jpg"
    Image.fromarray(scene.observation.image).save(jpeg, quality=95)
    [det] = scene.detections
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"bbox": det.bbox.tolist(), "category": "chair", "cad": "chair0", "score": 0.9}]))
    out = tmp_path / "bundles"
    assert estimate(jpeg, "--out", out, "--weights", weights, "--detections", boxes, "--cads", cads.source) == 0
    aligned = tmp_path / "aligned"
    argv = ["align", str(out / "chair"), "--cads", str(cads.source), "--checkpoint", str(shipped_checkpoint())]
    assert cli.main([*argv, "--out", str(aligned)]) == 0
    [prediction] = json.loads((aligned / "chair" / "predictions.json").read_text())
    assert prediction["cad"] == "chair0" and np.all(np.isfinite(prediction["t"]))
    assert (aligned / "chair" / "overlay.png").is_file()


# Errors --------------------------------------------------------------------------------------------------


def test_a_missing_or_unreadable_photo_is_named(weights: Path, tmp_path: Path, capsys) -> None:
    good = photo(tmp_path / "good.jpg")
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    assert estimate(good, missing, "--out", out, "--weights", weights) == 2
    err = one_line_error(capsys)
    assert str(missing) in err and "file not found" in err
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a JPEG")
    assert estimate(broken, "--out", out, "--weights", weights) == 2
    err = one_line_error(capsys)
    assert str(broken) in err and "not a readable image" in err
    assert not out.exists()  # refused before anything was written


def test_without_the_extra_the_error_says_how_to_install_it(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    assert estimate(photo(tmp_path / "a.jpg"), "--out", tmp_path / "out", "--device", "cpu") == 2
    assert "pip install 'multisparc[estimate]'" in one_line_error(capsys)


def test_weights_that_cannot_be_had_point_to_weights(weights: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from multisparc.estimate import depth_model

    image = photo(tmp_path / "a.jpg")
    out = tmp_path / "out"
    # Offline and not in the cache: the real code path, no network touched.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert estimate(image, "--out", out, "--model", "multisparc-tests/no-such-model", "--device", "cpu") == 2
    err = one_line_error(capsys)
    assert "multisparc-tests/no-such-model" in err and "--weights DIR" in err
    # A fetch that fails (no network): the hub's error, shortened to one line, and the way out.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    real_load = depth_model._load

    def no_network(transformers, source: str, local_only: bool):
        if not local_only:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")
        return real_load(transformers, source, local_only)

    monkeypatch.setattr(depth_model, "_load", no_network)
    assert estimate(image, "--out", out, "--model", "multisparc-tests/no-such-model", "--device", "cpu") == 2
    err = one_line_error(capsys)
    assert "could not fetch" in err and "couldn't connect" in err and "--weights DIR" in err
    # A folder that is no model, and a model of relative (unitless) depth.
    assert estimate(image, "--out", out, "--weights", tmp_path) == 2
    assert str(tmp_path) in one_line_error(capsys)
    relative = tmp_path / "relative"
    shutil.copytree(weights, relative)
    config = json.loads((relative / "config.json").read_text())
    (relative / "config.json").write_text(json.dumps({**config, "depth_estimation_type": "relative"}))
    assert estimate(image, "--out", out, "--weights", relative) == 2
    assert "relative depth" in one_line_error(capsys)
    assert not out.exists()


def test_detections_take_one_photo_and_their_cads(weights: Path, tmp_path: Path, capsys) -> None:
    a, b = photo(tmp_path / "a.jpg"), photo(tmp_path / "b.jpg")
    boxes = tmp_path / "boxes.json"
    boxes.write_text("[]")
    assert estimate(a, b, "--out", tmp_path / "out", "--weights", weights, "--detections", boxes) == 2
    assert "--cads" in one_line_error(capsys)
    cads = tmp_path / "cads.json"
    cads.write_text("{}")
    assert estimate(a, b, "--out", tmp_path / "out", "--weights", weights, "--detections", boxes, "--cads", cads) == 2
    assert "one photo" in one_line_error(capsys)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"bbox": [1, 1, 9, 9], "category": "chair", "cad": "sofa9"}]))
    cads = tmp_path / "chair" / "cads.json"
    cads.parent.mkdir()
    cads.write_text(json.dumps({"chair0": {"path": "chair.ply", "category": "chair", "sym": "none"}}))
    Path(cads.parent / "chair.ply").write_text("ply\n")  # never loaded: the index is only read
    assert estimate(a, "--out", tmp_path / "out", "--weights", weights, "--detections", bad, "--cads", cads) == 2
    err = one_line_error(capsys)
    assert str(bad) in err and "sofa9" in err
    same = tmp_path / "other"
    same.mkdir()
    assert estimate(a, photo(same / "a.png"), "--out", tmp_path / "out", "--weights", weights) == 2
    assert "rename one" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()
