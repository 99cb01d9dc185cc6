"""Fixtures shared by test modules: the rendered chair scene of `chair_scene`, made once per module."""

from __future__ import annotations

import pytest

from chair_scene import chair_cads, chair_scene
from multisparc.cad import CadIndex
from multisparc.datasets.bundle import SceneBundle


@pytest.fixture(scope="module")
def cads(tmp_path_factory: pytest.TempPathFactory) -> CadIndex:
    """The chair's CAD index (modules with CADs of their own define their own `cads`)."""
    return chair_cads(tmp_path_factory.mktemp("cads"))


@pytest.fixture(scope="module")
def scene(cads: CadIndex) -> SceneBundle:
    """The rendered chair scene (modules with scenes of their own define their own `scene`)."""
    return chair_scene(cads)
