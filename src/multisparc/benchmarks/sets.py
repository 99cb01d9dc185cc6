"""Seeded benchmark sets of synthetic scene bundles: procedural and SweetHome3D CADs, clean, realistic and
predicted noise, two variants of the clean sets for inputs as a user's come: every depth map scaled by
1.05 (the per-image scale error of monocular metric depth; normals, being directions, are unchanged by
it), and boxes without masks; and structured sets, whose scenes are arranged as real rooms are
(`multisparc.scenes.layouts`: chairs around tables, rows of one model, groups against a wall), where
aligning the objects jointly has something to gain over aligning them one by one.

    OUT/cads/procedural/cads.json        the procedural library (or a copy of a given index)
    OUT/cads/sweethome3d/cads.json       the test half of the SweetHome3D catalogue made metric (paths into
                                         its folder; `cad.index.SWEETHOME3D_TRAINING` is the other half)
    OUT/<set>/cads.json                  the index the set's detections refer to
    OUT/<set>/scene_00000 ...            scene bundles with gt.json
    OUT/benchset.json                    what was made, with the parameters

Scene i of a set is drawn from the generator seeded by (seed, i), exactly as `multisparc synth --seed S
--cads OUT/<set>/cads.json --noise LEVEL` draws it, so the sets of one library show the same scenes,
differing only in the perception noise (and the variants' depth scale or masks). A scene whose gt.json
(the last file a bundle gets) exists is kept, so an interrupted run resumes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from multisparc.cad import CadIndex
from multisparc.cad.procedural import build_library
from multisparc.datasets.bundle import SceneBundle, write_bundle, write_json
from multisparc.render import RayCaster
from multisparc.scenes import PerceptionNoise, SceneConfig, SceneSampler, render_scene_frame, to_bundle

#: Objects per scene of the structured sets: enough for each to tell the network about the others.
STRUCTURED_OBJECTS = (2, 5)


@dataclass(frozen=True)
class SetSpec:
    """One benchmark set: its name, CAD library ("procedural" or "sweethome3d"), noise level, the factor
    every depth map is multiplied by, whether detections keep their masks, and whether its scenes are
    structured layouts (`SceneConfig.layout_share` 1 and STRUCTURED_OBJECTS objects) rather than
    independently placed objects."""

    name: str
    library: str
    noise: str
    depth_scale: float = 1.0
    masks: bool = True
    structured: bool = False

    def scene_config(self, config: SceneConfig) -> SceneConfig:
        """The set's scene sampling: `config`, made structured for a structured set."""
        return replace(config, layout_share=1.0, objects=STRUCTURED_OBJECTS) if self.structured else config



SETS: dict[str, SetSpec] = {
    spec.name: spec
    for spec in (
        SetSpec("procedural-clean", "procedural", "clean"),
        SetSpec("procedural-realistic", "procedural", "realistic"),
        SetSpec("sweethome3d-clean", "sweethome3d", "clean"),
        SetSpec("sweethome3d-realistic", "sweethome3d", "realistic"),
        SetSpec("procedural-depth105", "procedural", "clean", depth_scale=1.05),
        SetSpec("procedural-boxes", "procedural", "clean", masks=False),
        SetSpec("sweethome3d-depth105", "sweethome3d", "clean", depth_scale=1.05),
        SetSpec("sweethome3d-boxes", "sweethome3d", "clean", masks=False),
        SetSpec("procedural-predicted", "procedural", "predicted"),
        SetSpec("sweethome3d-predicted", "sweethome3d", "predicted"),
        SetSpec("procedural-structured-clean", "procedural", "clean", structured=True),
        SetSpec("procedural-structured-realistic", "procedural", "realistic", structured=True),
        SetSpec("sweethome3d-structured-clean", "sweethome3d", "clean", structured=True),
        SetSpec("sweethome3d-structured-realistic", "sweethome3d", "realistic", structured=True),
    )
}


def _library(
    out: Path, library: str, procedural: Path | None, per_class: int, cads_seed: int, sweethome3d: Path | None
) -> Path:
    """The cads.json of a library under out/cads/<library>/, made once."""
    target = out / "cads" / library / "cads.json"
    if target.is_file():
        return target
    if library == "procedural":
        if procedural is None:
            return build_library(target.parent, per_class=per_class, seed=cads_seed)
        return CadIndex.load(procedural).save(target)
    if sweethome3d is None:
        raise ValueError(
            "the sweethome3d sets need the SweetHome3D catalogue folder (--sweethome3d DIR, e.g. "
            "../shared/data/cad/sweethome3d); or choose --sets procedural-clean,procedural-realistic"
        )
    return CadIndex.from_sweethome3d(sweethome3d, half="test").save(target)


def user_inputs(bundle: SceneBundle, spec: SetSpec) -> SceneBundle:
    """The bundle with its depth scaled by spec.depth_scale and, unless spec.masks, its masks dropped."""
    observation = bundle.observation
    if spec.depth_scale != 1.0:
        observation = replace(observation, depth=(observation.depth * spec.depth_scale).astype(np.float32))
    detections = bundle.detections if spec.masks else [replace(det, mask=None) for det in bundle.detections]
    return replace(bundle, observation=observation, detections=detections)


def make_set(
    out_dir: Path, cads_json: Path, spec: SetSpec, n_scenes: int, seed: int, config: SceneConfig, progress: bool = True
) -> int:
    """Write scenes 0 .. n_scenes - 1 of one set into out_dir (module docstring); returns how many were new."""
    from tqdm import tqdm

    cads = CadIndex.load(cads_json)
    cads.save(out_dir / "cads.json")
    caster = RayCaster(cads)
    sampler = SceneSampler(cads, config, caster=caster)
    level = PerceptionNoise(spec.noise)
    made = 0
    for index in tqdm(range(n_scenes), desc=out_dir.name, unit="scene", disable=not progress):
        name = f"scene_{index:05d}"
        if (out_dir / name / "gt.json").is_file():
            continue
        scene = sampler.sample(np.random.default_rng([seed, index]))
        bundle = to_bundle(scene, render_scene_frame(scene, caster, level), name=name)
        write_bundle(out_dir / name, user_inputs(bundle, spec))
        made += 1
    return made


def make_benchmark_sets(
    out: Path,
    n_scenes: int,
    seed: int,
    sets: Sequence[str] = tuple(SETS),
    sweethome3d: Path | None = None,
    procedural: Path | None = None,
    per_class: int = 8,
    cads_seed: int = 0,
    config: SceneConfig | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Make the named sets under out (module docstring); returns set name -> its folder.

    procedural: an existing cads.json to use as the procedural library (e.g. the one a model was trained
    with); None builds `per_class` models a class with `cads_seed` (0 and 8: a default training run's).
    sweethome3d: the SweetHome3D catalogue folder, needed by the sweethome3d sets.
    """
    if n_scenes < 1:
        raise ValueError(f"the sets need at least 1 scene, got {n_scenes}")
    unknown = [name for name in sets if name not in SETS]
    if unknown:
        raise ValueError(f"unknown set(s) {', '.join(unknown)}; expected some of {', '.join(SETS)}")
    out = Path(out)
    config = config or SceneConfig()
    folders: dict[str, Path] = {}
    record: dict[str, dict[str, str]] = {}
    for name in sets:
        spec = SETS[name]
        cads_json = _library(out, spec.library, procedural, per_class, cads_seed, sweethome3d)
        folders[name] = out / name
        make_set(folders[name], cads_json, spec, n_scenes, seed, spec.scene_config(config), progress)
        record[name] = {
            "library": spec.library,
            "noise": spec.noise,
            "depth_scale": spec.depth_scale,
            "masks": spec.masks,
            "structured": spec.structured,
            "cads": f"{name}/cads.json",
        }
    # Sets made by earlier calls into the same folder stay listed.
    info = out / "benchset.json"
    earlier = json.loads(info.read_text()).get("sets", {}) if info.is_file() else {}
    write_json(
        info, {"scenes": n_scenes, "seed": seed, "scene_config": config.to_dict(), "sets": {**earlier, **record}}
    )
    return folders
