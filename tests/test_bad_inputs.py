"""Bad inputs a new user gives the commands: each gets a one-line error (or a warning) naming the file, a
non-zero exit code, and no wrong output; a batch skips the bad scene and finishes the others.

Two clean 480 x 360 scenes of two objects each are made once with `multisparc synth`; every test corrupts a
copy. The network is a tiny random one (alignment runs with the paper's pipeline and no overlay, for speed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from multisparc import cli
from multisparc.cad import CadIndex
from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig, MultiSparcNet
from multisparc.training.checkpoint import export_model

# End to end (CLI runs, rendered scenes, trained networks): left out of the fast subset.
pytestmark = pytest.mark.slow


def _tiny_model() -> MultiSparcNet:
    torch.manual_seed(0)
    return MultiSparcNet(ModelConfig(n_latent=4, c_latent=16, n_blocks=1, n_self_attn=1, n_heads=2, dim_head=8))


def _export(path: Path, model: MultiSparcNet) -> Path:
    export_model(path, model, model.config.to_dict(), InputConfig(n_bbox=32, n_cad=16).to_dict())
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("model") / "model.pt", _tiny_model())


def bundle(synth: Path, tmp_path: Path, name: str = "scene", index: int = 0) -> Path:
    """A copy of scene_0000<index> at tmp_path/bundles/<name>, to corrupt."""
    return Path(shutil.copytree(synth / f"scene_{index:05d}", tmp_path / "bundles" / name))


def align(synth: Path, model: Path, out: Path, *bundles: Path, extra: tuple[str, ...] = ()) -> int:
    argv = ["align", *map(str, bundles), "--cads", str(synth / "cads" / "cads.json"), "--checkpoint", str(model)]
    return cli.main([*argv, "--out", str(out), "--no-overlay", "--pipeline", "paper", *extra])


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def assert_refused(code: int, err: str, file: Path, words: str, out: Path | None = None) -> None:
    """A failed run: non-zero exit, the error names the file and says `words`, and no predictions were written."""
    assert code != 0
    assert str(file) in err and words in err, err
    if out is not None:
        assert not list(out.rglob("predictions.json"))


# 1. Depth in millimetres -------------------------------------------------------------------------------------


def test_integer_depth_is_refused_with_how_to_give_its_unit(synth, model, tmp_path, capsys) -> None:
    scene = bundle(synth, tmp_path)
    depth = np.load(scene / "depth.npy")
    np.save(scene / "depth.npy", np.round(depth * 1000).astype(np.uint16))
    code = align(synth, model, tmp_path / "out", scene)
    assert_refused(
        code, capsys.readouterr().err, scene / "depth.npy", "depth.png (uint16 millimetres)", tmp_path / "out"
    )


def test_float_millimetre_depth_is_refused(synth, model, tmp_path, capsys) -> None:
    scene = bundle(synth, tmp_path)
    np.save(scene / "depth.npy", np.load(scene / "depth.npy") * 1000)
    code = align(synth, model, tmp_path / "out", scene)
    assert_refused(code, capsys.readouterr().err, scene / "depth.npy", "look like millimetres", tmp_path / "out")


# 2. Depth and normals without usable values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "corrupt", "words"),
    [
        ("depth.npy", lambda a: np.zeros_like(a), "have a valid depth"),
        ("depth.npy", lambda a: np.full_like(a, np.nan), "have a valid depth"),
        ("depth.npy", lambda a: -a, "negative nearly everywhere"),
        ("normals.npy", lambda a: np.zeros_like(a), "no known normal"),
        ("normals.npy", lambda a: np.full_like(a, np.nan), "no known normal"),
        ("normals.npy", lambda a: -a, "face away from the camera"),
        ("normals.npy", lambda a: np.round((a + 1) * 127.5).astype(np.uint8), "encoded normal image"),
        ("normals.npy", lambda a: (a + 1) / 2, "encoded normal image"),
    ],
    ids=[
        "depth-zero",
        "depth-nan",
        "depth-negative",
        "normals-zero",
        "normals-nan",
        "normals-flipped",
        "normals-uint8",
        "normals-01",
    ],
)
def test_unusable_depth_and_normals_are_refused(synth, model, tmp_path, capsys, file, corrupt, words) -> None:
    scene = bundle(synth, tmp_path)
    np.save(scene / file, corrupt(np.load(scene / file)))
    code = align(synth, model, tmp_path / "out", scene)
    assert_refused(code, capsys.readouterr().err, scene / file, words, tmp_path / "out")


def test_degraded_depth_and_normals_get_a_warning(synth, model, tmp_path, caplog) -> None:
    scene = bundle(synth, tmp_path)
    depth = np.load(scene / "depth.npy")
    depth[:, : depth.shape[1] * 3 // 4] = 0  # a quarter of the pixels keep their depth
    np.save(scene / "depth.npy", depth)
    normals = np.load(scene / "normals.npy")
    normals[: normals.shape[0] // 4] *= -1  # a quarter face away
    np.save(scene / "normals.npy", normals)
    with caplog.at_level(logging.WARNING):
        assert align(synth, model, tmp_path / "out", scene) == 0
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(str(scene / "depth.npy") in w and "have a valid depth" in w for w in warnings), warnings
    assert any(str(scene / "normals.npy") in w and "face away" in w for w in warnings), warnings
    assert (tmp_path / "out" / "scene" / "predictions.json").is_file()


# 3. Intrinsics -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda K: K[2].__setitem__(2, 2.0), "divide K by K[2][2] = 2"),
        (lambda K: K[2].__setitem__(0, 0.01), "last row must be [0, 0, 1]"),
        (lambda K: K[0].__setitem__(0, 0.0), "focal lengths must be positive"),
        (lambda K: K[1].__setitem__(0, 5.0), "upper-triangular"),
        (lambda K: K[0].__setitem__(2, 2000.0), "principal point"),
        (lambda K: [row.__setitem__(i, v / 480) for row in K for i, v in enumerate(row[:2])], "field of view"),
    ],
    ids=["K22-is-2", "last-row", "singular", "lower-triangle", "principal-point", "normalised"],
)
def test_bad_intrinsics_are_refused_before_any_output(synth, model, tmp_path, capsys, change, words) -> None:
    scene = bundle(synth, tmp_path)
    edit_json(scene / "camera.json", lambda camera: change(camera["K"]))
    code = align(synth, model, tmp_path / "out", scene)
    assert_refused(code, capsys.readouterr().err, scene / "camera.json", words, tmp_path / "out")


# 4. A network that returns NaN -------------------------------------------------------------------------------


def test_a_model_with_nan_weights_is_refused(synth, tmp_path, capsys) -> None:
    broken = _tiny_model()
    with torch.no_grad():
        broken.decoder.out.weight.fill_(float("nan"))
    path = _export(tmp_path / "nan.pt", broken)
    code = align(synth, path, tmp_path / "out", bundle(synth, tmp_path))
    assert_refused(code, capsys.readouterr().err, path, "NaN or infinite", tmp_path / "out")


def test_non_finite_poses_are_never_written(synth, model, tmp_path, capsys, monkeypatch) -> None:
    from multisparc.inference.pipeline import Aligner

    original = Aligner.align

    def nan_align(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        result.objects[0].t = np.full(3, np.nan)
        return result

    monkeypatch.setattr(Aligner, "align", nan_align)
    scene = bundle(synth, tmp_path)
    code = align(synth, model, tmp_path / "out", scene)
    assert_refused(code, capsys.readouterr().err, scene, "NaN or infinite poses", tmp_path / "out")


# 5. Batches --------------------------------------------------------------------------------------------------


def test_a_broken_bundle_is_skipped_and_the_others_aligned(synth, model, tmp_path, capsys) -> None:
    broken, good = bundle(synth, tmp_path, "a_broken"), bundle(synth, tmp_path, "b_good", index=1)
    (broken / "depth.npy").write_bytes(b"")
    out = tmp_path / "out"
    assert align(synth, model, out, broken, good) == 1
    err = capsys.readouterr().err
    assert "1 of 2 scene(s) failed" in err and f"{broken / 'depth.npy'}: not a readable .npy array" in err
    assert (out / "b_good" / "predictions.json").is_file()
    assert not (out / "a_broken" / "predictions.json").exists()

    # --strict stops at the first failure: the good scene after it is not aligned.
    strict = tmp_path / "strict"
    assert align(synth, model, strict, broken, good, extra=("--strict",)) == 2
    assert str(broken / "depth.npy") in capsys.readouterr().err
    assert not (strict / "b_good").exists()


def test_a_failed_rerun_removes_the_stale_outputs(synth, model, tmp_path, capsys) -> None:
    scene, out = bundle(synth, tmp_path), tmp_path / "out"
    assert align(synth, model, out, scene) == 0
    assert (out / "scene" / "predictions.json").is_file()
    np.save(scene / "depth.npy", np.zeros((360, 480), np.float32))
    assert align(synth, model, out, scene) == 1
    assert not (out / "scene" / "predictions.json").exists() and not (out / "scene" / "alignment.json").exists()
    assert str(scene / "depth.npy") in (out / "scene" / "error.txt").read_text()
    assert str(scene / "depth.npy") in capsys.readouterr().err


def test_synth_skips_a_scene_it_cannot_make(synth, tmp_path, capsys, monkeypatch) -> None:
    from multisparc.scenes import SceneSampler
    from multisparc.scenes.sampler import SceneSamplingError

    original = SceneSampler.sample

    def failing_first(self, rng):
        if not getattr(self, "_failed", False):
            self._failed = True
            raise SceneSamplingError("no scene with 2 object(s) visible")
        return original(self, rng)

    monkeypatch.setattr(SceneSampler, "sample", failing_first)
    out = tmp_path / "synth"
    (out / "scene_00000").mkdir(parents=True)
    (out / "scene_00000" / "camera.json").write_text("{}")  # an earlier run's bundle must not stay
    argv = ["synth", "--scenes", "2", "--out", str(out), "--cads", str(synth / "cads" / "cads.json")]
    assert cli.main([*argv, "--objects", "1", "1", "--preview", "0"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 scene(s) failed" in err and f"{out / 'scene_00000'}: not written" in err
    assert not (out / "scene_00000").exists() and (out / "scene_00001" / "camera.json").is_file()


# 6. Evaluation -----------------------------------------------------------------------------------------------


def oracle(synth: Path, folder: Path) -> Path:
    """The ground truth of both scenes written as predictions: perfect ones."""
    for scene in sorted(synth.glob("scene_*")):
        records = json.loads((scene / "gt.json").read_text())
        for record in records:
            record["score"] = record["detection_score"] = 0.9
        (folder / scene.name).mkdir(parents=True)
        (folder / scene.name / "predictions.json").write_text(json.dumps(records))
    return folder


def evaluate(synth: Path, predictions: Path, out: Path) -> int:
    argv = ["evaluate", "--scenes", str(synth), "--cads", str(synth / "cads" / "cads.json")]
    return cli.main([*argv, "--predictions", f"truth={predictions}", "--out", str(out), "--no-ap-mesh"])


def test_evaluate_refuses_duplicate_ids_and_scores_the_other_scenes(synth, tmp_path, capsys) -> None:
    predictions = oracle(synth, tmp_path / "pred")
    path = predictions / "scene_00000" / "predictions.json"
    edit_json(path, lambda records: records.append(records[0]))
    out = tmp_path / "out"
    assert evaluate(synth, predictions, out) == 1
    assert_refused(1, capsys.readouterr().err, path, "duplicate id")
    results = json.loads((out / "results.json").read_text())
    assert results["n_scenes"] == 1 and results["methods"]["truth"]["per_scene"]["instance"] == 1.0


def test_evaluate_refuses_predictions_of_unknown_scenes(synth, tmp_path, capsys) -> None:
    predictions = oracle(synth, tmp_path / "pred")
    stranger = predictions / "scene_00042" / "predictions.json"
    stranger.parent.mkdir()
    shutil.copy(predictions / "scene_00000" / "predictions.json", stranger)
    assert evaluate(synth, predictions, tmp_path / "out") == 2
    assert_refused(2, capsys.readouterr().err, stranger, "does not hold")
    assert not (tmp_path / "out" / "results.json").exists()


def test_evaluate_names_the_file_of_an_unknown_cad(synth, tmp_path, capsys) -> None:
    predictions = oracle(synth, tmp_path / "pred")
    path = predictions / "scene_00001" / "predictions.json"
    edit_json(path, lambda records: records[0].__setitem__("cad", "proc_chair_999"))
    assert evaluate(synth, predictions, tmp_path / "out") == 1
    assert_refused(1, capsys.readouterr().err, path, "CAD 'proc_chair_999' is not in")


# 7. Model files that run code --------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_model_file_cannot_run_code_on_load(synth, tmp_path, capsys) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "model.pt"
    model = _tiny_model()
    data = {
        "format": "multisparc-model",
        "version": 1,
        "model_config": model.config.to_dict(),
        "input_config": InputConfig(n_bbox=32, n_cad=16).to_dict(),
        "state_dict": model.state_dict(),
        "payload": _Payload(marker),
    }
    torch.save(data, path)
    code = align(synth, path, tmp_path / "out", bundle(synth, tmp_path))
    assert_refused(code, capsys.readouterr().err, path, "could run code", tmp_path / "out")
    assert not marker.exists()


def test_the_shipped_and_trained_model_files_still_load() -> None:
    from multisparc.inference import load_checkpoint, shipped_checkpoint

    load_checkpoint(shipped_checkpoint())


# 8. Tracebacks and vague messages become one-line errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("file", "change", "words"),
    [
        ("camera.json", lambda data: data.__setitem__("width", None), "width must be a whole number"),
        ("detections.json", lambda data: data[0].__setitem__("id", None), "id must be a whole number"),
        ("detections.json", lambda data: data[0].__setitem__("score", None), "score must be a finite number"),
        (
            "detections.json",
            lambda data: data[0].__setitem__("bbox", [v / 480 for v in data[0]["bbox"]]),
            "looks like fractions of the image",
        ),
        ("detections.json", lambda data: data[0].__setitem__("bbox", [600, 10, 700, 50]), "wholly outside"),
    ],
    ids=["null-width", "null-id", "null-score", "box-in-0-1", "box-outside"],
)
def test_malformed_records_are_named(synth, model, tmp_path, capsys, file, change, words) -> None:
    scene = bundle(synth, tmp_path)
    edit_json(scene / file, change)
    code = align(synth, model, tmp_path / "out", scene)
    assert_refused(code, capsys.readouterr().err, scene / file, words, tmp_path / "out")


def test_a_mask_that_is_no_image_is_named(synth, model, tmp_path, capsys) -> None:
    scene = bundle(synth, tmp_path)
    mask = scene / json.loads((scene / "detections.json").read_text())[0]["mask"]
    mask.write_text("not a picture")
    code = align(synth, model, tmp_path / "out", scene)
    assert_refused(code, capsys.readouterr().err, mask, "not a readable image", tmp_path / "out")


def test_a_mask_of_another_object_gets_a_warning(synth, model, tmp_path, caplog) -> None:
    scene = bundle(synth, tmp_path)  # the chair (id 2) gets the table's mask
    edit_json(scene / "detections.json", lambda data: data[1].__setitem__("mask", data[0]["mask"]))
    with caplog.at_level(logging.WARNING):
        assert align(synth, model, tmp_path / "out", scene) == 0
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(str(scene / "detections.json") in w and "(id 2)" in w and "another object" in w for w in warnings)


@pytest.mark.parametrize("kind", ["file", "below-a-file"])
def test_an_output_folder_that_cannot_be_written_is_named(synth, model, tmp_path, capsys, kind) -> None:
    (tmp_path / "taken").write_text("a file")
    out = tmp_path / "taken" if kind == "file" else tmp_path / "taken" / "out"
    code = align(synth, model, out, bundle(synth, tmp_path))
    words = "is a file" if kind == "file" else "cannot create the output folder"
    assert code == 2
    assert_refused(code, capsys.readouterr().err, out, words)


def test_a_folder_as_checkpoint_and_a_missing_gpu_are_named(synth, model, tmp_path, capsys) -> None:
    code = align(synth, model.parent, tmp_path / "out", bundle(synth, tmp_path))
    assert_refused(code, capsys.readouterr().err, model.parent, f"is a folder, not a model file; give {model}")
    if not torch.cuda.is_available():
        code = align(synth, model, tmp_path / "out", bundle(synth, tmp_path, "again"), extra=("--device", "cuda"))
        err = capsys.readouterr().err
        assert code == 2 and "device 'cuda': torch finds no CUDA GPU" in err and str(model) not in err


# 9. CAD libraries --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cad_folder(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chair/: a good metric mesh, the same in millimetres, an empty file and a file that is no mesh."""
    folder = tmp_path_factory.mktemp("meshes")
    cads = CadIndex.load(synth / "cads" / "cads.json")
    mesh = cads.mesh(cads.ids_of("chair")[0]).copy()
    (folder / "src" / "chair").mkdir(parents=True)
    mesh.export(folder / "src" / "chair" / "good.obj")
    mesh.apply_scale(1000.0)
    mesh.export(folder / "src" / "chair" / "millimetres.obj")
    (folder / "src" / "chair" / "empty.obj").write_text("")
    (folder / "src" / "chair" / "garbage.obj").write_text("v 0 0 0\nf 1 1 1\n")
    return folder / "src"


def test_cads_folder_leaves_out_broken_meshes_and_lists_them(cad_folder, tmp_path, capsys) -> None:
    out = tmp_path / "cads.json"
    assert cli.main(["cads", "folder", "--src", str(cad_folder), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(cad_folder / "chair" / "empty.obj") in err and str(cad_folder / "chair" / "garbage.obj") in err
    assert "millimetres" in err
    assert sorted(json.loads(out.read_text())) == ["chair_good", "chair_millimetres"]

    assert cli.main(["cads", "folder", "--src", str(cad_folder), "--out", str(tmp_path)]) == 2
    assert_refused(2, capsys.readouterr().err, tmp_path, "is a folder; --out is the index file to write")


def test_cads_check_lists_every_problem_and_flags_millimetres(cad_folder, tmp_path, capsys) -> None:
    cads = {
        name: {"path": str(cad_folder / "chair" / f"{name}.obj"), "category": "chair", "sym": "none"}
        for name in ("good", "millimetres", "empty", "garbage")
    }
    (tmp_path / "cads.json").write_text(json.dumps(cads))
    assert cli.main(["cads", "check", "--cads", str(tmp_path / "cads.json")]) == 1
    captured = capsys.readouterr()
    assert "2 of 4 model(s) cannot be loaded" in captured.err
    assert str(cad_folder / "chair" / "empty.obj") in captured.err
    assert str(cad_folder / "chair" / "garbage.obj") in captured.err
    assert f"{cad_folder / 'chair' / 'millimetres.obj'}: its size" in captured.err and "millimetres" in captured.err
    lines = {line.split()[0]: line for line in captured.out.splitlines()}
    assert lines["good"].split("faces")[1].split()[-2] == "m"
    assert " m " not in lines["millimetres"] and "not metres?" in lines["millimetres"]
