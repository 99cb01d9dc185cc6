"""Tests of ROCA detections as alignment input: COCO RLE masks, the per_frame_preds.json reader, RLE masks in
detections.json, and `multisparc align --detections` end to end on a small synthetic bundle.

The hand-worked RLE: the 5 x 8 mask below, flattened column by column (COCO's order), is 3 background
pixels, 20 foreground, 2 background, 4 foreground, 11 background: counts [3, 20, 2, 4, 11]. Compressed,
3 -> "3"; 20 = 0b10100 needs a continuation (its bit 0x10 would read as a sign): "d" (48 + 20 + 32), "0";
2 -> "2"; the fourth count is stored as 4 - 20 = -16, one 5-bit group 0b10000 with the sign bit: "@"
(48 + 16); the fifth as 11 - 2 = 9: "9". So "3d02@9".
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from multisparc.cad import CadIndex, SampleCache, UnknownCadId
from multisparc.cad.procedural import build_library
from multisparc.categories import category_info
from multisparc.commands import align as align_command
from multisparc.datasets.bundle import BundleError, read_bundle, read_poses, write_bundle
from multisparc.datasets.formats import ConversionError
from multisparc.datasets.rle import RleError, decode_rle, encode_rle
from multisparc.datasets.roca import find_image_key, read_roca_file, roca_detections
from multisparc.geometry import quat_to_matrix
from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig, MultiSparcNet
from multisparc.render import RayCaster
from multisparc.scenes import PerceptionNoise, SceneConfig, SceneSampler, render_scene_frame, to_bundle
from multisparc.training.checkpoint import export_model

# End to end (CLI runs, rendered scenes, trained networks): left out of the fast subset.
pytestmark = pytest.mark.slow

HAND_MASK = np.array(
    [
        [0, 1, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 1, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
    ],
    dtype=bool,
)
HAND_COUNTS = [3, 20, 2, 4, 11]
HAND_STRING = "3d02@9"
KEY = "scene0011_00/color/000100.jpg"
INPUTS = InputConfig(n_bbox=32, n_cad=16)


# COCO RLE -----------------------------------------------------------------------------------------


def test_rle_decodes_hand_worked_string_and_list_counts() -> None:
    for counts in (HAND_STRING, HAND_COUNTS):
        mask = decode_rle({"size": [5, 8], "counts": counts})
        assert mask.dtype == bool and mask.shape == (5, 8)
        np.testing.assert_array_equal(mask, HAND_MASK)
    # A mask whose first pixel is set starts with an empty background run: 2 x 3, left column set.
    np.testing.assert_array_equal(decode_rle({"size": [2, 3], "counts": "024"}), [[1, 0, 0], [1, 0, 0]])


def test_rle_encoder_gives_the_hand_worked_counts_and_round_trips() -> None:
    assert encode_rle(HAND_MASK) == {"size": [5, 8], "counts": HAND_STRING}
    assert encode_rle(HAND_MASK, compressed=False)["counts"] == HAND_COUNTS
    rng = np.random.default_rng(3)
    blobs = np.zeros((60, 90), dtype=bool)
    blobs[5:50, 10:80] = True  # long runs: multi-character counts and negative differences
    blobs[20:30, 30:35] = False
    for mask in (rng.uniform(size=(23, 17)) > 0.5, blobs):
        for compressed in (True, False):
            np.testing.assert_array_equal(decode_rle(encode_rle(mask, compressed)), mask)


def test_malformed_rles_are_rejected() -> None:
    with pytest.raises(RleError, match=r"sum to 39 pixels, but its size 5 x 8 has 40"):
        decode_rle({"size": [5, 8], "counts": [3, 20, 2, 4, 10]})
    with pytest.raises(RleError, match="ends in the middle of a number"):
        decode_rle({"size": [5, 8], "counts": "3d"})
    with pytest.raises(RleError, match="size must be"):
        decode_rle({"size": [5], "counts": [5]})


# detections.json masks ------------------------------------------------------------------------------


def test_detections_json_masks_may_be_rle_objects(tmp_path) -> None:
    Image.fromarray(np.zeros((5, 8, 3), dtype=np.uint8)).save(tmp_path / "image.png")
    K = [[10.0, 0.0, 3.5], [0.0, 10.0, 2.0], [0.0, 0.0, 1.0]]
    (tmp_path / "camera.json").write_text(json.dumps({"K": K, "width": 8, "height": 5}))
    (tmp_path / "masks").mkdir()
    Image.fromarray(HAND_MASK.astype(np.uint8) * 255).save(tmp_path / "masks" / "3.png")
    base = {"category": "chair", "bbox": [0, 0, 5, 4], "cad": "c"}
    records = [
        {**base, "id": 1, "mask": {"size": [5, 8], "counts": HAND_STRING}},
        {**base, "id": 2, "mask": {"size": [5, 8], "counts": HAND_COUNTS}},
        {**base, "id": 3, "mask": "masks/3.png"},
        {**base, "id": 4},
    ]
    (tmp_path / "detections.json").write_text(json.dumps(records))
    detections = read_bundle(tmp_path).detections
    for det in detections[:3]:
        np.testing.assert_array_equal(det.mask, HAND_MASK)
    assert detections[3].mask is None

    records[1]["mask"] = {"size": [8, 5], "counts": HAND_COUNTS}
    (tmp_path / "detections.json").write_text(json.dumps(records))
    with pytest.raises(BundleError, match=r"detections\.json: detection #1 \(id 2\) mask: RLE size is \[8, 5\]"):
        read_bundle(tmp_path)


# The ROCA reader --------------------------------------------------------------------------------------


def _roca_record(**fields) -> dict:
    record = {
        "score": 0.9,
        "bbox": [1.0, 0.0, 5.0, 4.0],
        "t": [0.1, 0.2, 2.0],
        "q": [1.0, 0.0, 0.0, 0.0],
        "s": [1.0, 1.0, 1.0],
        "category": "chair",
        "scene_cad_id": ["03001627", "abc"],
    }
    record.update(fields)
    return {key: value for key, value in record.items() if value is not None}


def test_roca_reader_turns_records_into_detections(tmp_path) -> None:
    path = tmp_path / "per_frame_preds.json"
    half = [
        # ROCA's own form: compressed RLE, here at half the bundle's 16 x 10 pixels.
        _roca_record(segmentation={"size": [5, 8], "counts": HAND_STRING}),
        # ROCA's spelling, a wild retrieval, list counts.
        _roca_record(
            category="bookcase",
            scene_cad_id=None,
            wild_cad_id=[2871439, "shelf1"],
            bbox=[2.0, 1.0, 7.0, 4.0],
            segmentation={"size": [5, 8], "counts": [0, *HAND_COUNTS, 0]},  # the inverse mask
        ),
        # A detector of our own: CAD id string, class from the synset, no pose, no mask, no score.
        {"bbox": [0.0, 0.0, 3.0, 3.0], "cad": "04379243_t1"},
        # A class given as ROCA's CAD_TAXONOMY synset number.
        _roca_record(category=3001627, bbox=[0.0, 0.0, 2.0, 2.0]),
    ]
    full = [_roca_record(bbox=[2.0, 1.0, 9.0, 8.0], segmentation=encode_rle(np.pad(HAND_MASK, ((0, 5), (0, 8)))))]
    other = "scene0011_00/color/000200.jpg"
    path.write_text(json.dumps({KEY: half, other: full, "scene0011_00/color/000300.jpg": []}))
    frames = read_roca_file(path)
    assert list(frames) == [KEY, other, "scene0011_00/color/000300.jpg"]
    detections = roca_detections(path, KEY, frames[KEY], height=10, width=16)

    assert [d.id for d in detections] == [0, 1, 2, 3]
    assert [d.category for d in detections] == ["chair", "bookshelf", "table", "chair"]
    assert [d.cad for d in detections] == ["03001627_abc", "02871439_shelf1", "04379243_t1", "03001627_abc"]
    assert [d.score for d in detections] == [0.9, 0.9, 1.0, 0.9]
    # Half-resolution masks become 2 x 2 blocks; every box of the image, with or without a mask, maps pixel
    # centres u -> (u + 0.5) * 2 - 0.5.
    block = np.ones((2, 2), dtype=bool)
    np.testing.assert_array_equal(detections[0].mask, np.kron(HAND_MASK, block))
    np.testing.assert_array_equal(detections[1].mask, np.kron(~HAND_MASK, block))
    np.testing.assert_allclose(detections[0].bbox, [2.5, 0.5, 10.5, 8.5])
    np.testing.assert_allclose(detections[1].bbox, [4.5, 2.5, 14.5, 8.5])
    np.testing.assert_allclose(detections[2].bbox, [0.5, 0.5, 6.5, 6.5])
    assert detections[2].mask is None and detections[3].mask is None
    # Masks at the bundle's size leave masks and boxes as they are.
    (same,) = roca_detections(path, other, frames[other], height=10, width=16)
    np.testing.assert_array_equal(same.mask[:5, :8], HAND_MASK)
    assert same.mask.sum() == HAND_MASK.sum()
    np.testing.assert_array_equal(same.bbox, [2.0, 1.0, 9.0, 8.0])
    # An image without masks has its boxes in ROCA's 480 x 360 image: scaled to a 960 x 720 bundle image,
    # kept in a 480 x 360 one, refused for an image of another aspect ratio.
    path.write_text(json.dumps({KEY: [_roca_record(bbox=[10.0, 20.0, 110.0, 220.0])]}))
    boxes_only = read_roca_file(path)[KEY]
    (scaled,) = roca_detections(path, KEY, boxes_only, height=720, width=960)
    np.testing.assert_allclose(scaled.bbox, [20.5, 40.5, 220.5, 440.5])
    (kept,) = roca_detections(path, KEY, boxes_only, height=360, width=480)
    np.testing.assert_array_equal(kept.bbox, [10.0, 20.0, 110.0, 220.0])
    with pytest.raises(ConversionError, match=r"no masks.*480 x 360.*640 x 360"):
        roca_detections(path, KEY, boxes_only, height=360, width=640)


def test_roca_reader_names_the_file_and_record_of_bad_input(tmp_path) -> None:
    path = tmp_path / "preds.json"
    hand = {"size": [5, 8], "counts": HAND_COUNTS}
    cases = [
        ([_roca_record(bbox=None)], r"preds\.json: .*000100\.jpg prediction #0: missing key\(s\) bbox"),
        ([_roca_record(scene_cad_id=None)], r"prediction #0: needs scene_cad_id"),
        ([_roca_record(category="lamp")], r"prediction #0: .*lamp"),
        ([_roca_record(category=None, scene_cad_id=None, cad="mine")], r"missing key category, and the CAD id 'mine'"),
        ([_roca_record(), _roca_record(segmentation={"size": [5, 8], "counts": "3d"})], r"prediction #1 segmentation"),
        ([_roca_record(segmentation={"size": 40, "counts": "3d"})], r"#0: segmentation must be a COCO RLE"),
        ([_roca_record(bbox=[3, 0, 1, 2], segmentation=hand)], r"prediction #0: empty box \[3\.0, 0\.0, 1\.0, 2\.0\]"),
        (
            [_roca_record(segmentation=hand), _roca_record(segmentation={"size": [10, 16], "counts": [160]})],
            r"000100\.jpg: the masks of one image have different sizes \[\(5, 8\), \(10, 16\)\]",
        ),
    ]
    for records, message in cases:
        path.write_text(json.dumps({KEY: records}))
        with pytest.raises(ConversionError, match=message):
            roca_detections(path, KEY, read_roca_file(path)[KEY], 5, 8)
    # Masks of another aspect ratio belong to another image.
    path.write_text(json.dumps({KEY: [_roca_record(segmentation=hand)]}))
    with pytest.raises(ConversionError, match=r"its masks are 8 x 5, the bundle's image 8 x 8"):
        roca_detections(path, KEY, read_roca_file(path)[KEY], 8, 8)


def test_image_key_comes_from_the_option_the_key_file_or_the_bundle_name(tmp_path) -> None:
    keys = [KEY, "scene0011_00/color/000200.jpg"]
    by_name = tmp_path / "scene0011_00_000100"
    by_name.mkdir()
    assert find_image_key("p.json", keys, by_name) == KEY
    assert find_image_key("p.json", keys, by_name, explicit=keys[1]) == keys[1]
    other = tmp_path / "kitchen"
    other.mkdir()
    with pytest.raises(ConversionError, match=r"p\.json: no image key matches the bundle name 'kitchen'"):
        find_image_key("p.json", keys, other)
    (other / "roca_key").write_text(keys[1] + "\n")
    assert find_image_key("p.json", keys, other) == keys[1]
    with pytest.raises(ConversionError, match=r"has no image key 'x/color/1\.jpg' \(from --image-key\)"):
        find_image_key("p.json", keys, other, explicit="x/color/1.jpg")


# align --detections end to end --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A clean 160 x 120 synthetic scene of two procedural models, whose CADs are indexed again under ShapeNet
    style ids `<synset>_<procedural id>` (shapenet.json), as ROCA's CADs are."""
    folder = tmp_path_factory.mktemp("roca")
    cads_json = build_library(folder / "cads", per_class=1, seed=0)
    procedural = json.loads(cads_json.read_text())
    shapenet = {f"{category_info(e['category']).shapenet_synset}_{cad}": e for cad, e in procedural.items()}
    (folder / "cads" / "shapenet.json").write_text(json.dumps(shapenet))
    cads = CadIndex.load(cads_json, cache=SampleCache(folder / "samples"))
    config = SceneConfig(width=160, height=120, focal=145.0, objects=(2, 2), min_detections=2, visibility_points=200)
    caster = RayCaster(cads)
    scene = SceneSampler(cads, config, caster=caster).sample(np.random.default_rng(4))
    bundle = to_bundle(scene, render_scene_frame(scene, caster, PerceptionNoise("clean")), "scene0011_00_000100")
    scene_dir = write_bundle(folder / "bundles" / bundle.name, bundle)
    (scene_dir / "detections.json").unlink()  # --detections must not need it
    torch.manual_seed(0)
    model = MultiSparcNet(ModelConfig(n_latent=4, c_latent=16, n_blocks=1, n_self_attn=1, n_heads=2, dim_head=8))
    torch.nn.init.normal_(model.decoder.out.weight, std=0.01)
    export_model(folder / "model.pt", model, model.config.to_dict(), INPUTS.to_dict())
    return {"folder": folder, "bundle": bundle, "scene_dir": scene_dir, "cads": folder / "cads" / "shapenet.json"}


def _write_roca(path: Path, bundle, extra: list[dict] | None = None) -> Path:
    """The bundle's detections as ROCA would write them at half resolution (80 x 60); the last without a mask."""
    records = []
    for k, det in enumerate(bundle.detections):
        synset, _, model = f"{category_info(det.category).shapenet_synset}_{det.cad}".partition("_")
        record = {
            "score": det.score,
            "bbox": ((det.bbox + 0.5) / 2 - 0.5).tolist(),
            "t": [0.0, 0.0, 3.0],
            "q": [1.0, 0.0, 0.0, 0.0],
            "s": [1.0, 1.0, 1.0],
            "category": "bookcase" if det.category == "bookshelf" else det.category,
            "scene_cad_id": [synset, model],
        }
        if k < len(bundle.detections) - 1:
            record["segmentation"] = encode_rle(det.mask[::2, ::2])
        records.append(record)
    path.write_text(json.dumps({KEY: records + (extra or [])}))
    return path


def _align_args(synthetic: dict, roca: Path, out: Path, *more: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    align_command.add_arguments(parser)
    argv = [str(synthetic["scene_dir"]), "--cads", str(synthetic["cads"]), "--checkpoint"]
    argv += [str(synthetic["folder"] / "model.pt"), "--out", str(out), "--detections", str(roca), *more]
    return parser.parse_args(argv)


def test_align_takes_roca_detections(synthetic, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MULTISPARC_CACHE", str(tmp_path / "cache"))
    bundle = synthetic["bundle"]
    roca = _write_roca(tmp_path / "per_frame_preds.json", bundle)
    assert align_command.run(_align_args(synthetic, roca, tmp_path / "out")) == 0

    out = tmp_path / "out" / bundle.name
    poses = read_poses(out / "predictions.json")
    assert [p.id for p in poses] == list(range(len(bundle.detections)))
    assert [p.category for p in poses] == [d.category for d in bundle.detections]
    synsets = [category_info(d.category).shapenet_synset for d in bundle.detections]
    assert [p.cad for p in poses] == [f"{s}_{d.cad}" for s, d in zip(synsets, bundle.detections, strict=True)]
    assert all(0 < p.score < 1 and p.detection_score == d.score for p, d in zip(poses, bundle.detections, strict=True))
    diagnostics = json.loads((out / "alignment.json").read_text())
    assert diagnostics["detections"] == {"file": str(roca), "image_key": KEY}
    # Masks were decoded (the last record has none: the full pipeline reads one from the depth), and boxes
    # came back to full resolution: each initial model centre lies on the ray through its box centre.
    sources = [diagnostics["surface_depth"][str(p.id)]["source"] for p in poses]
    assert sources == ["mask"] * (len(poses) - 1) + ["depth mask"]
    cads = CadIndex.load(synthetic["cads"])
    K = bundle.observation.camera.K
    for pose, det in zip(poses, bundle.detections, strict=True):
        first = pose.extras["iterations"][0]
        R = quat_to_matrix(torch.tensor(first["q"], dtype=torch.float64)).numpy()
        centre = np.asarray(first["t"]) + R @ (np.asarray(first["s"]) * cads.centre(pose.cad))
        x1, y1, x2, y2 = np.clip(det.bbox, 0, [159, 119, 159, 119])
        ray = np.linalg.inv(K) @ [(x1 + x2) / 2, (y1 + y2) / 2, 1.0]
        angle = math.degrees(math.atan2(np.linalg.norm(np.cross(centre, ray)), np.dot(centre, ray)))
        assert angle < 1e-4


def test_align_detections_errors_name_the_problem(synthetic, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MULTISPARC_CACHE", str(tmp_path / "cache"))
    bundle = synthetic["bundle"]
    stranger = {"score": 0.5, "bbox": [1, 1, 20, 20], "category": "sofa", "scene_cad_id": ["04256520", "nope"]}
    roca = _write_roca(tmp_path / "preds.json", bundle, extra=[stranger])
    with pytest.raises(UnknownCadId, match=r"shapenet\.json: detection 2 asks for CAD '04256520_nope'"):
        align_command.run(_align_args(synthetic, roca, tmp_path / "out", "--strict"))
    # Without --strict the scene is reported and skipped, and the run fails.
    assert align_command.run(_align_args(synthetic, roca, tmp_path / "out")) == 1
    assert not (tmp_path / "out" / bundle.name / "predictions.json").exists()
    roca = _write_roca(tmp_path / "preds.json", bundle)
    with pytest.raises(ConversionError, match=r"preds\.json: has no image key 'other/color/1\.jpg'"):
        args = _align_args(synthetic, roca, tmp_path / "out", "--image-key", "other/color/1.jpg", "--strict")
        align_command.run(args)
    parser = argparse.ArgumentParser()
    align_command.add_arguments(parser)
    plain = [str(synthetic["scene_dir"]), "--cads", str(synthetic["cads"]), "--checkpoint", "m.pt", "--out", "o"]
    with pytest.raises(ValueError, match="--image-key names an image of a --detections file"):
        align_command.run(parser.parse_args([*plain, "--image-key", KEY]))
