"""Tests of `multisparc demo` end to end (with a small random network passed explicitly) and of the shipped
checkpoint's lookup."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from multisparc import cli
from multisparc.datasets.bundle import read_bundle, read_poses
from multisparc.geometry import quat_to_matrix, rotation_error
from multisparc.inference import checkpoint as checkpoint_module
from multisparc.inference import shipped_checkpoint
from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig, MultiSparcNet
from multisparc.training.checkpoint import export_model

# End to end (CLI runs, rendered scenes, trained networks): left out of the fast subset.
pytestmark = pytest.mark.slow

# id, class, sym | t0 r0 s0 ok0 | t r s score aligned
ROW = re.compile(
    r"^\s*(\d+)\s+(\w+)\s+(none|2|4|inf)\s+\|\s+(\S+)\s+(\S+)\s+(\S+)\s+(yes|no)\s+\|"
    r"\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(yes|no)\s*$"
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    model = MultiSparcNet(ModelConfig(n_latent=4, c_latent=16, n_blocks=1, n_self_attn=1, n_heads=2, dim_head=8))
    torch.nn.init.normal_(model.decoder.out.weight, std=0.01)  # a non-trivial update
    path = tmp_path_factory.mktemp("model") / "model.pt"
    export_model(path, model, model.config.to_dict(), InputConfig(n_bbox=32, n_cad=16).to_dict())
    return path


def _errors(pred: dict, gt) -> tuple[float, float, float]:
    """Independent errors of a pose record against a ground-truth ObjectPose: cm, deg (symmetric), % per axis."""
    R = quat_to_matrix(torch.from_numpy(np.stack([np.asarray(pred["q"], dtype=np.float64), gt.q])))
    r = math.degrees(float(rotation_error(R[0], R[1], gt.sym)))
    s = 100 * float(np.mean(np.abs(np.asarray(pred["s"]) / gt.s - 1)))
    return 100 * float(np.linalg.norm(np.asarray(pred["t"]) - gt.t)), r, s


def test_demo_aligns_a_synthetic_scene_and_prints_the_errors(model_file, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MULTISPARC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--checkpoint", str(model_file), "--objects", "3", "--seed", "2"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out

    bundle = read_bundle(out / "scene")
    assert len(bundle.gt) == 3
    predictions = json.loads((out / "predictions.json").read_text())
    assert [p["id"] for p in predictions] == [d.id for d in bundle.detections]
    assert [p.id for p in read_poses(out / "predictions.json")] == [d.id for d in bundle.detections]
    with Image.open(out / "overlay.png") as image:
        assert image.format == "PNG" and image.size[0] > 2 * bundle.observation.camera.width
    assert "up_source" in json.loads((out / "alignment.json").read_text())
    table = (out / "errors.txt").read_text()
    assert table.strip() in printed

    rows = [ROW.match(line) for line in table.splitlines()]
    rows = [row for row in rows if row is not None]
    truth = {obj.id: obj for obj in bundle.gt}
    matched = [p for p in predictions if p["id"] in truth]
    assert [int(row[1]) for row in rows] == [p["id"] for p in matched] and rows
    for row, pred in zip(rows, matched, strict=True):
        gt = truth[pred["id"]]
        assert (row[2], row[3]) == (gt.category, gt.sym)
        numbers = [float(row[i]) for i in (4, 5, 6, 8, 9, 10, 11)]
        assert all(math.isfinite(v) for v in numbers)
        # Both error triples agree with the poses in predictions.json: the first iteration and the final pose.
        np.testing.assert_allclose(numbers[:3], _errors(pred["iterations"][0], gt), atol=0.051)
        np.testing.assert_allclose(numbers[3:6], _errors(pred, gt), atol=0.051)
        assert numbers[6] == pytest.approx(pred["score"], abs=0.0051)
        for ok, (t, r, s) in ((row[7], numbers[:3]), (row[12], numbers[3:6])):
            assert ok == ("yes" if t <= 20 and r <= 20 and s <= 20 else "no")
    n_aligned = sum(row[12] == "yes" for row in rows)
    assert f"aligned {n_aligned} of {len(rows)} (initial poses: " in table
    for p in predictions:
        if p["id"] not in truth:
            assert f"false detection {p['id']}: no object there" in table
    for obj_id in set(truth) - {p["id"] for p in predictions}:
        assert f"object {obj_id}: missed by the detector" in table


def test_demo_without_a_network_fails_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(checkpoint_module, "SHIPPED_CHECKPOINT", tmp_path / "checkpoints" / "cpu.pt")
    with pytest.raises(FileNotFoundError, match=r"checkpoints/cpu\.pt: the shipped network is missing"):
        shipped_checkpoint()
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert "the shipped network is missing" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # nothing is generated before the network is found
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "cpu.pt").write_bytes(b"")
    assert shipped_checkpoint() == tmp_path / "checkpoints" / "cpu.pt"
