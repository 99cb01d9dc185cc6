"""Contact sheet: a grid picture with one drawn model per cell."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from multisparc.cad.contact_sheet import render_contact_sheet
from multisparc.cad.procedural import generate


def test_sheet_draws_every_model_in_its_cell(tmp_path):
    meshes = [
        ("box", trimesh.creation.box(extents=(1.0, 0.5, 0.3))),
        ("chair", generate("chair", np.random.default_rng(0)).mesh),
        ("table", generate("table", np.random.default_rng(1)).mesh),
    ]
    out = render_contact_sheet(meshes, tmp_path / "sheet" / "models.png", cols=2)
    assert out == tmp_path / "sheet" / "models.png"
    image = np.asarray(Image.open(out).convert("L"), dtype=float)
    height, width = image.shape
    assert width < height < 1.3 * width  # 2 x 2 cells, each a little taller than wide for its title
    cells = [image[: height // 2, : width // 2], image[: height // 2, width // 2 :], image[height // 2 :, : width // 2]]
    for cell in cells:
        assert (cell < 200).mean() > 0.03  # shaded model pixels on the white background
    assert (image[height // 2 :, width // 2 :] < 200).mean() == 0.0  # the fourth cell stays empty


def test_sheet_rejects_nothing_to_draw(tmp_path):
    with pytest.raises(ValueError, match="no meshes"):
        render_contact_sheet([], tmp_path / "empty.png")
    with pytest.raises(ValueError, match="cols"):
        render_contact_sheet([("box", trimesh.creation.box())], tmp_path / "bad.png", cols=0)
    with pytest.raises(ValueError, match="'empty' has no faces"):
        render_contact_sheet([("empty", trimesh.Trimesh())], tmp_path / "empty.png")
