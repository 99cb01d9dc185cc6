"""`multisparc bundle`: an RGB-D frame (colour image, depth image, intrinsics, boxes) becomes a scene bundle.

Two clean synthetic scenes (`multisparc synth --noise clean`) are taken apart into what an RGB-D camera
gives (a JPEG, a 16-bit PNG in millimetres, K as text, boxes as JSON); the command must put them back
together (depth within the 1 mm quantisation, normals within a few degrees, camera and detections equal)
so that `multisparc align` runs on them. Registration of depth of another size or camera, the unit of the
depth files, and every bad input (a one-line error naming the file, exit code 2, nothing left in --out).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multisparc import cli
from multisparc.datasets.bundle import read_bundle
from multisparc.datasets.rgbd import scale_intrinsics, write_rgbd_frame

WIDTH, HEIGHT = 480, 360


def cads_json(synth: Path) -> Path:
    return synth / "cads" / "cads.json"


def rgbd_frame(scene: Path, folder: Path) -> dict[str, Path]:
    """What an RGB-D camera and a detector give of a synthetic scene: color.jpg, depth.png (uint16 mm),
    intrinsic.txt (3x3) and boxes.json (boxes, classes, CADs, scores; no ids, no masks)."""
    return write_rgbd_frame(read_bundle(scene), folder)


def make_bundle(frame: dict[str, Path], cads: Path, out: Path, *extra: str) -> int:
    argv = ["bundle", "--cads", str(cads), "--out", str(out), *extra]
    for option, path in frame.items():
        argv += [f"--{option.replace('_', '-')}", str(path)]
    return cli.main(argv)


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles in degrees between the unit normals (N, 3) a and b."""
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def normal_errors(normals: np.ndarray, truth: np.ndarray) -> np.ndarray:
    both = np.any(normals != 0, axis=-1) & np.any(truth != 0, axis=-1)
    return angles_deg(normals[both], truth[both])


# The round trip, and alignment ------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_rgbd_frame_becomes_the_bundle_it_came_from_and_aligns(synth: Path, tmp_path: Path) -> None:
    from multisparc.inference import shipped_checkpoint

    bundles = []
    for index in range(2):
        scene = synth / f"scene_{index:05d}"
        frame = rgbd_frame(scene, tmp_path / f"frame{index}")
        out = tmp_path / "bundles" / scene.name
        assert make_bundle(frame, cads_json(synth), out) == 0
        made, original = read_bundle(out), read_bundle(scene)
        obs, truth = made.observation, original.observation
        assert (obs.camera.width, obs.camera.height) == (WIDTH, HEIGHT)
        np.testing.assert_allclose(obs.camera.K, truth.camera.K, rtol=0, atol=1e-9)
        assert np.abs(obs.depth - truth.depth).max() <= 0.0005 + 1e-6  # rounded to whole millimetres
        assert np.median(normal_errors(obs.normals, truth.normals)) < 3.0
        assert np.abs(obs.image.astype(int) - truth.image).mean() < 3  # JPEG at quality 95
        assert len(made.detections) == len(original.detections)
        for det, expected in zip(made.detections, original.detections, strict=True):
            assert (det.category, det.cad, det.score) == (expected.category, expected.cad, expected.score)
            np.testing.assert_array_equal(det.bbox, expected.bbox)
        bundles.append(out)
    aligned = tmp_path / "aligned"
    argv = ["align", *map(str, bundles), "--cads", str(cads_json(synth)), "--checkpoint", str(shipped_checkpoint())]
    assert cli.main([*argv, "--out", str(aligned), "--pipeline", "paper"]) == 0
    for out in bundles:
        predictions = json.loads((aligned / out.name / "predictions.json").read_text())
        assert len(predictions) == len(read_bundle(out).detections)
        assert (aligned / out.name / "overlay.png").is_file()


# Registration ---------------------------------------------------------------------------------------------


def test_a_larger_colour_image_is_resized_to_the_depths_grid(synth: Path, tmp_path: Path) -> None:
    """ScanNet-like: colour at twice the depth's size with a 4x4 K; the bundle comes at the depth's size."""
    scene = synth / "scene_00000"
    frame = rgbd_frame(scene, tmp_path / "frame")
    original = read_bundle(scene)
    image = Image.fromarray(original.observation.image).resize((2 * WIDTH, 2 * HEIGHT), Image.Resampling.BICUBIC)
    image.save(frame["image"], quality=95)
    K4 = np.eye(4)
    K4[:3, :3] = scale_intrinsics(original.observation.camera.K, (WIDTH, HEIGHT), (2 * WIDTH, 2 * HEIGHT))
    np.savetxt(frame["intrinsics"], K4)
    boxes = json.loads(frame["detections"].read_text())
    for box in boxes:
        box["bbox"] = [(v + 0.5) * 2 - 0.5 for v in box["bbox"]]
    frame["detections"].write_text(json.dumps(boxes))
    out = tmp_path / "bundle"
    assert make_bundle(frame, cads_json(synth), out) == 0
    made = read_bundle(out)
    assert made.observation.image.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(made.observation.camera.K, original.observation.camera.K, atol=1e-9)
    assert np.abs(made.observation.depth - original.observation.depth).max() <= 0.0005 + 1e-6
    for det, expected in zip(made.detections, original.detections, strict=True):
        np.testing.assert_allclose(det.bbox, expected.bbox, atol=1e-9)


def test_depth_of_another_camera_is_registered_by_its_intrinsics(synth: Path, tmp_path: Path) -> None:
    """A depth camera that sees a crop of the colour view (its own K, from a fx/fy/cx/cy JSON): its depth lands
    on the same colour pixels, and the colour pixels it does not see stay unknown."""
    scene = synth / "scene_00000"
    frame = rgbd_frame(scene, tmp_path / "frame")
    original = read_bundle(scene).observation
    top, left, height, width = 30, 40, 300, 400  # the aspect ratio of the colour image, and smaller
    depth = np.load(scene / "depth.npy")[top : top + height, left : left + width]
    Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(frame["depth"])
    K = original.camera.K
    depth_camera = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2] - left, "cy": K[1, 2] - top}
    (tmp_path / "depth_camera.json").write_text(json.dumps(depth_camera))
    out = tmp_path / "bundle"
    extra = ("--depth-intrinsics", str(tmp_path / "depth_camera.json"), "--size", f"{WIDTH}x{HEIGHT}")
    assert make_bundle(frame, cads_json(synth), out, *extra) == 0
    made = read_bundle(out).observation
    np.testing.assert_allclose(made.camera.K, K, atol=1e-9)
    seen = np.zeros((HEIGHT, WIDTH), dtype=bool)
    seen[top : top + height, left : left + width] = True
    assert np.abs(made.depth[seen] - original.depth[seen]).max() <= 0.0005 + 1e-6
    assert not made.depth[~seen].any() and not made.normals[~seen].any()
    assert np.median(normal_errors(made.normals, original.normals)) < 3.0


def test_size_resizes_the_whole_bundle_with_its_masks(synth: Path, tmp_path: Path) -> None:
    scene = synth / "scene_00000"
    frame = rgbd_frame(scene, tmp_path / "frame")
    shutil.copytree(scene / "masks", tmp_path / "frame" / "masks")
    detections = json.loads((scene / "detections.json").read_text())
    boxes = json.loads(frame["detections"].read_text())
    for box, det in zip(boxes, detections, strict=True):
        box["mask"] = det["mask"]  # relative to the boxes file
    frame["detections"].write_text(json.dumps(boxes))
    out = tmp_path / "bundle"
    assert make_bundle(frame, cads_json(synth), out, "--size", "240x180") == 0
    made, original = read_bundle(out), read_bundle(scene)
    obs = made.observation
    assert obs.image.shape == (180, 240, 3) and obs.depth.shape == (180, 240) and obs.normals.shape == (180, 240, 3)
    K = scale_intrinsics(original.observation.camera.K, (WIDTH, HEIGHT), (240, 180))
    np.testing.assert_allclose(obs.camera.K, K, atol=1e-9)
    for det, expected in zip(made.detections, original.detections, strict=True):
        np.testing.assert_allclose(det.bbox, (expected.bbox + 0.5) / 2 - 0.5, atol=1e-9)
        assert det.mask is not None and det.mask.shape == (180, 240)
        assert abs(det.mask.sum() - expected.mask.sum() / 4) < 0.1 * expected.mask.sum() / 4
    # Nearest neighbour: every depth is one of the frame's own depths, none a mix across an edge.
    assert np.isin(obs.depth, (_depth_mm(frame) * 0.001).astype(np.float32)).all()


@pytest.mark.parametrize("suffix", [".npy", ".exr"])
def test_float_depth_files_hold_metres(synth: Path, tmp_path: Path, suffix: str) -> None:
    scene = synth / "scene_00001"
    frame = rgbd_frame(scene, tmp_path / "frame")
    depth = np.load(scene / "depth.npy")
    frame["depth"] = tmp_path / f"depth{suffix}"
    if suffix == ".npy":
        np.save(frame["depth"], depth)
    else:
        OpenEXR = pytest.importorskip("OpenEXR")
        with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"Z": depth}) as exr:
            exr.write(str(frame["depth"]))
    out = tmp_path / "bundle"
    assert make_bundle(frame, cads_json(synth), out) == 0
    np.testing.assert_array_equal(read_bundle(out).observation.depth, depth)


def test_fov_and_json_cameras(synth: Path, tmp_path: Path) -> None:
    scene = synth / "scene_00000"
    frame = rgbd_frame(scene, tmp_path / "frame")
    del frame["intrinsics"]
    assert make_bundle(frame, cads_json(synth), tmp_path / "fov", "--fov", "60") == 0
    focal = WIDTH / 2 / np.tan(np.radians(30))
    expected = [[focal, 0, 239.5], [0, focal, 179.5], [0, 0, 1]]
    np.testing.assert_allclose(read_bundle(tmp_path / "fov").observation.camera.K, expected)
    # A camera.json: its gravity direction and pose come along.
    frame["intrinsics"] = scene / "camera.json"
    assert make_bundle(frame, cads_json(synth), tmp_path / "json") == 0
    camera, original = read_bundle(tmp_path / "json").observation.camera, read_bundle(scene).observation.camera
    np.testing.assert_allclose(camera.up, original.up)
    np.testing.assert_allclose(camera.cam_to_world, original.cam_to_world)


# Bad inputs -----------------------------------------------------------------------------------------------


def _depth_mm(frame: dict[str, Path]) -> np.ndarray:
    return np.asarray(Image.open(frame["depth"]))


def _replace_depth(frame: dict[str, Path], name: str, array: np.ndarray) -> str:
    frame["depth"] = frame["depth"].with_name(name)
    if name.endswith(".npy"):
        np.save(frame["depth"], array)
    else:
        Image.fromarray(array).save(frame["depth"])
    return "depth"


def _edit_boxes(frame: dict[str, Path], change) -> str:
    boxes = json.loads(frame["detections"].read_text())
    change(boxes[0])
    frame["detections"].write_text(json.dumps(boxes))
    return "detections"


def _write_intrinsics(frame: dict[str, Path], text: str, name: str = "intrinsic.txt") -> str:
    frame["intrinsics"] = frame["intrinsics"].with_name(name)
    frame["intrinsics"].write_text(text)
    return "intrinsics"


def _K(frame: dict[str, Path]) -> np.ndarray:
    return np.loadtxt(frame["intrinsics"])


def _matrix_text(matrix: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.10g}" for v in row) for row in matrix)


def _narrow_depth_camera(frame: dict[str, Path]) -> str:
    """A depth camera K that sees a 1/400th of the colour view: valid, but not this depth's camera."""
    K = _K(frame)
    K[:2, :2] *= 20
    (frame["depth"].parent / "depth_intrinsic.txt").write_text(_matrix_text(K))
    frame["depth_intrinsics"] = frame["depth"].parent / "depth_intrinsic.txt"
    return "depth_intrinsics"


# Each case changes the frame and returns the key of the file the error must name (or an option's name), or
# (that, extra command-line arguments); then the words the error must say.
BAD_INPUTS = {
    "depth-png-read-as-metres": (lambda f: ("depth", ["--depth-scale", "1"]), "these values fit --depth-scale 0.001"),
    "depth-npy-in-millimetres": (
        lambda f: _replace_depth(f, "depth.npy", _depth_mm(f).astype(np.float32)),
        "the unit is wrong",
    ),
    "depth-npy-of-integers": (
        lambda f: _replace_depth(f, "depth.npy", _depth_mm(f)),
        "give their unit with --depth-scale",
    ),
    "depth-of-three-channels": (
        lambda f: _replace_depth(f, "depth.npy", np.repeat(_depth_mm(f)[..., None] / 1000.0, 3, axis=-1)),
        "expected one channel",
    ),
    "depth-png-of-8-bits": (
        lambda f: _replace_depth(f, "depth8.png", (_depth_mm(f) // 20).astype(np.uint8)),
        "16-bit integers",
    ),
    "depth-as-jpeg": (lambda f: _replace_depth(f, "depth.jpg", (_depth_mm(f) // 20).astype(np.uint8)), "JPEG is lossy"),
    "depth-all-unknown": (lambda f: _replace_depth(f, "zero.png", np.zeros((HEIGHT, WIDTH), np.uint16)), "valid depth"),
    "depth-of-unrelated-size": (
        lambda f: _replace_depth(f, "square.png", _depth_mm(f)[:, :HEIGHT].copy()),
        "give the depth camera's K with --depth-intrinsics",
    ),
    "depth-intrinsics-of-another-camera": (_narrow_depth_camera, "covers 0."),
    "K-transposed": (lambda f: _write_intrinsics(f, _matrix_text(_K(f).T)), "K's last row must be [0, 0, 1]"),
    "K-normalised-by-the-image-size": (
        lambda f: _write_intrinsics(f, _matrix_text(np.diag([1 / WIDTH, 1 / HEIGHT, 1]) @ _K(f))),
        "K is in pixels",
    ),
    "K-not-a-matrix": (lambda f: _write_intrinsics(f, "440 0 240\n0 440 180\n"), "K must be a 3x3 (or 4x4) matrix"),
    "K-of-a-camera-json-of-another-image": (
        lambda f: _write_intrinsics(
            f, json.dumps({"K": [[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]], "width": 640, "height": 480}), "cam.json"
        ),
        "is the camera of a 640 x 480 image",
    ),
    "K-json-without-K": (lambda f: _write_intrinsics(f, json.dumps({"f": 440}), "cam.json"), "with fx, fy, cx, cy"),
    "detection-of-an-empty-cad": (lambda f: _edit_boxes(f, lambda box: box.update(cad=" ")), "cad must be a CAD id"),
    "detection-of-an-unknown-cad": (lambda f: _edit_boxes(f, lambda box: box.update(cad="nope")), "not a CAD id"),
    "detection-of-another-class-than-its-cad": (
        lambda f: _edit_boxes(f, lambda box: box.update(category="bathtub" if box["category"] != "bathtub" else "bed")),
        "not a",
    ),
    "box-in-fractions-of-the-image": (
        lambda f: _edit_boxes(f, lambda box: box.update(bbox=[0.1, 0.1, 0.5, 0.5])),
        "looks like fractions",
    ),
    "box-without-category": (lambda f: _edit_boxes(f, lambda box: box.pop("category")), "missing key(s) category"),
    "image-missing": (lambda f: (f["image"].unlink(), "image")[1], "file not found"),
    "fov-beyond-a-pinhole": (lambda f: (f.pop("intrinsics"), ("--fov", ["--fov", "170"]))[1], "between 0 and 160"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_are_refused_naming_the_file(synth: Path, tmp_path: Path, capsys, case: str) -> None:
    frame = rgbd_frame(synth / "scene_00000", tmp_path / "frame")
    change, words = BAD_INPUTS[case]
    named = change(frame)
    extra: list[str] = []
    if isinstance(named, tuple):
        named, extra = named
    out = tmp_path / "out" / "bundle"
    code = make_bundle(frame, cads_json(synth), out, *extra)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("multisparc bundle: error:")]
    assert code == 2 and len(lines) == 1, err
    assert str(frame.get(named, named)) in lines[0] and words in lines[0], lines[0]
    assert not out.exists()  # nor its staging folder beside it
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_exr_without_openexr_says_how_to_convert(synth: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    frame = rgbd_frame(synth / "scene_00000", tmp_path / "frame")
    frame["depth"] = tmp_path / "depth.exr"
    frame["depth"].write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "OpenEXR", None)  # the import fails as without the package
    assert make_bundle(frame, cads_json(synth), tmp_path / "bundle") == 2
    err = capsys.readouterr().err
    assert str(frame["depth"]) in err and "pip install 'multisparc[exr]'" in err and "16-bit PNG" in err
    assert not (tmp_path / "bundle").exists()


def test_an_output_folder_that_holds_files_is_never_overwritten(synth: Path, tmp_path: Path, capsys) -> None:
    frame = rgbd_frame(synth / "scene_00000", tmp_path / "frame")
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert make_bundle(frame, cads_json(synth), out) == 2
    assert str(out) in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["notes.txt"]
    # An empty folder is fine.
    (out / "notes.txt").unlink()
    assert make_bundle(frame, cads_json(synth), out) == 0
    assert (out / "depth.npy").is_file()


def test_a_failure_while_writing_leaves_nothing(synth: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import multisparc.datasets.rgbd as rgbd

    def half_a_bundle(folder: Path, bundle) -> None:
        (Path(folder) / "camera.json").write_text("{}")
        raise OSError(28, "No space left on device", str(folder))

    monkeypatch.setattr(rgbd, "write_bundle", half_a_bundle)
    frame = rgbd_frame(synth / "scene_00000", tmp_path / "frame")
    out = tmp_path / "out" / "bundle"
    assert make_bundle(frame, cads_json(synth), out) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not list((tmp_path / "out").iterdir())  # neither the bundle nor its staging folder


def test_a_photo_that_asks_to_be_turned_gets_a_warning(synth: Path, tmp_path: Path, caplog) -> None:
    """Intrinsics and depth refer to the pixels as stored: an EXIF orientation is not applied, but said."""
    frame = rgbd_frame(synth / "scene_00000", tmp_path / "frame")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 deg clockwise to view"
    Image.open(frame["image"]).save(frame["image"], quality=95, exif=exif)
    with caplog.at_level("WARNING"):
        assert make_bundle(frame, cads_json(synth), tmp_path / "bundle") == 0
    assert f"{frame['image']}: EXIF orientation 6 is ignored" in caplog.text
    assert read_bundle(tmp_path / "bundle").observation.image.shape == (HEIGHT, WIDTH, 3)
