"""Fixtures shared by test modules: the rendered chair scene of `chair_scene`, made once per module.

The suite keeps its hands off the user's cache: surface samples go to a temporary folder
(`MULTISPARC_CACHE`, read by `multisparc.cad.sampling.default_cache_root`, and inherited by the CLI runs
the tests start), removed when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from chair_scene import chair_cads, chair_scene
from multisparc.cad import CadIndex
from multisparc.datasets.bundle import SceneBundle

_CACHE = tempfile.mkdtemp(prefix="multisparc-test-cache-")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["MULTISPARC_CACHE"] = _CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="module")
def cads(tmp_path_factory: pytest.TempPathFactory) -> CadIndex:
    """The chair's CAD index (modules with CADs of their own define their own `cads`)."""
    return chair_cads(tmp_path_factory.mktemp("cads"))


@pytest.fixture(scope="module")
def scene(cads: CadIndex) -> SceneBundle:
    """The rendered chair scene (modules with scenes of their own define their own `scene`)."""
    return chair_scene(cads)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clean 480 x 360 scene bundles written by `multisparc synth` (scene_00000: a table and a chair;
    scene_00001: a bin and a bed), with their cads/cads.json."""
    from multisparc import cli

    out = tmp_path_factory.mktemp("synth")
    argv = ["synth", "--scenes", "2", "--out", str(out), "--noise", "clean", "--objects", "2", "2", "--preview", "0"]
    assert cli.main(argv) == 0
    return out
