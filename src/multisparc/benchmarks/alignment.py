"""Alignment benchmark: named methods run over scene bundles (resumably) and scored by one evaluation code.

Layout of an output folder OUT:

    OUT/<method>/method.json                  {"method", "description", "ranking_score", "score_label",
                                               "settings": {"checkpoint", "seed"}}
    OUT/<method>/<scene>/predictions.json     camera-frame poses (`AlignmentResult.to_predictions`)
    OUT/<method>/<scene>/alignment.json       diagnostics with the stage timings of the image
    OUT/<method>/<scene>/inputs.sha1          the fingerprint of the bundle the predictions were made from

A scene whose predictions.json exists and whose bundle is unchanged (same fingerprint) is not aligned
again, so a killed run resumes where it stopped (alignment.json is written first, predictions.json and
the fingerprint last, all atomically); a scene whose bundle changed since (a regenerated benchmark set)
is aligned again; a folder made with another checkpoint or seed is refused rather than mixed. A scene
that fails leaves OUT/<method>/<scene>/error.txt instead (`multisparc.datasets.outputs`) and is tried
again by the next run. Predictions written by
`multisparc align --out DIR` or by other code score the same way; `method.json`, when present, names the
score their predictions are ranked by ("detection_score" for the 2D-score ablation), else the learned
"score", and what that score is ("score_label", for the plots; default "classification score").

Scoring of one method over the scene bundles (every bundle needs gt.json, camera frame):
- per scene, under the chosen preset: bundles with a camera.json "scene_id" group into that scene (its
  frames joined in the world frame by cam_to_world); any other bundle is a scene of its own, the case of
  synthetic single-image scenes;
- per image (`multisparc.evaluation.per_image`), with the preset's alignment rules and detection-score
  filter, and AP^mesh over the per-image assessments;
- the time per image: mean of the aligned images' `timings["total"]` (alignment without file I/O).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multisparc.baselines.methods import Method, MethodSpec
from multisparc.cad import CadIndex
from multisparc.datasets.bundle import BundleError, ObjectPose, atomic_write_bytes, read_bundle, read_poses, write_json
from multisparc.datasets.outputs import FAILURE_FILE, INPUT_ERRORS, SceneFailure, record_failure
from multisparc.evaluation import (
    AlignmentResults,
    EvalPreset,
    MeshApResults,
    PerImageResults,
    StrictPerImageResults,
    bundle_scene_id,
    evaluate_ap_mesh,
    evaluate_per_image,
    evaluate_scenes,
    ground_truth_from_bundles,
    image_frame_from_bundle,
    predictions_from_bundles,
    strict_per_image,
)
from multisparc.evaluation.ap_mesh import N_POINTS
from multisparc.render import RayCaster

METHOD_FILE = "method.json"
INPUTS_FINGERPRINT = "inputs.sha1"
RANKING_SCORES = ("score", "detection_score")
DEFAULT_SCORE_LABEL = "classification score"


def run_method(
    spec: MethodSpec,
    method: Method,
    scenes: Sequence[Path],
    out_dir: Path,
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
    failures: list[SceneFailure] | None = None,
) -> tuple[int, int]:
    """Align every scene bundle not yet done into out_dir/<scene>/ (module docstring).

    settings: what the predictions depend on besides the method (checkpoint, seed), JSON values; kept in
    method.json, and a folder holding predictions made with other settings raises BundleError rather
    than mixing them. failures: where a scene that fails on its input (`INPUT_ERRORS`) is recorded and
    skipped; None stops at the first with its error. Returns (scenes aligned now, scenes skipped because
    their predictions.json existed).
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    out_dir = Path(out_dir)
    info = {
        "method": spec.name,
        "description": spec.description,
        "ranking_score": spec.ranking_score,
        "score_label": spec.score_label,
        "settings": dict(settings or {}),
    }
    path = out_dir / METHOD_FILE
    if path.is_file():
        try:
            earlier = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise BundleError(path, f"not a method description ({error})") from error
        if earlier.get("method") != spec.name or earlier.get("settings", {}) != info["settings"]:
            raise BundleError(
                path,
                f"holds predictions of {earlier.get('method')!r} with settings {earlier.get('settings')}, not of "
                f"{spec.name!r} with {info['settings']}; choose another output folder or delete this one",
            )
    write_json(path, info)
    aligned = skipped = 0
    with logging_redirect_tqdm():  # errors on lines of their own, not glued to the progress bar
        for scene in tqdm(scenes, desc=spec.name, unit="scene", disable=not progress):
            target = out_dir / scene.name
            fingerprint = bundle_fingerprint(scene)
            stamp = target / INPUTS_FINGERPRINT
            if (target / "predictions.json").is_file() and stamp.is_file() and stamp.read_text().strip() == fingerprint:
                skipped += 1
                continue
            try:
                _align_scene(method, scene, target)
            except INPUT_ERRORS as error:
                if failures is None:
                    raise
                record_failure(failures, scene, error, target)
                stamp.unlink(missing_ok=True)
                continue
            atomic_write_bytes(stamp, (fingerprint + "\n").encode())
            aligned += 1
    return aligned, skipped


def _align_scene(method: Method, scene: Path, target: Path) -> None:
    """Align one scene bundle into target/ (predictions.json last, and only for finite poses)."""
    bundle = read_bundle(scene)
    result = method.align(bundle.observation, bundle.detections, scene_dir=scene)
    result.require_finite(scene)
    write_json(target / "alignment.json", result.diagnostics())
    write_json(target / "predictions.json", result.to_predictions())
    (target / FAILURE_FILE).unlink(missing_ok=True)


def check_scene(scene: Path, cads: CadIndex) -> None:
    """Read a scene bundle with every check of the readers, and require its gt.json with CADs of `cads`;
    BundleError naming the file otherwise."""
    bundle = read_bundle(scene)
    if bundle.gt is None:
        raise BundleError(scene / "gt.json", "file not found; evaluation needs the ground truth")
    _require_cads(scene / "gt.json", bundle.gt, cads)


def check_predictions(predictions_dir: Path, scene: Path, cads: CadIndex) -> None:
    """Read predictions_dir/<scene name>/predictions.json (unique ids, valid poses) and require CADs of `cads`;
    BundleError naming the file otherwise."""
    path = Path(predictions_dir) / Path(scene).name / "predictions.json"
    _require_cads(path, read_poses(path), cads)


def _require_cads(path: Path, poses: Sequence[ObjectPose], cads: CadIndex) -> None:
    for index, pose in enumerate(poses):
        if pose.cad not in cads:
            raise BundleError(path, f"object #{index} (id {pose.id}): CAD {pose.cad!r} is not in {cads.source}")


def check_known_scenes(predictions_dir: Path, scenes: Sequence[Path]) -> None:
    """BundleError naming the first predictions_dir/<name>/predictions.json whose <name> is none of `scenes`:
    predictions of other scenes must not be scored against these."""
    names = {Path(scene).name for scene in scenes}
    for path in sorted(Path(predictions_dir).glob("*/predictions.json")):
        if path.parent.name not in names:
            raise BundleError(path, f"predictions of a scene {path.parent.name!r} that the scene folder does not hold")


def bundle_fingerprint(scene: Path) -> str:
    """sha1 over the names and bytes of every file of a scene bundle folder (a few MB: milliseconds)."""
    digest = hashlib.sha1()
    for path in sorted(p for p in Path(scene).rglob("*") if p.is_file()):
        digest.update(path.relative_to(scene).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def method_info(predictions_dir: Path) -> tuple[str, str]:
    """(ranking score, score label) named by predictions_dir/method.json; ("score", "classification
    score") without that file."""
    path = Path(predictions_dir) / METHOD_FILE
    if not path.is_file():
        return "score", DEFAULT_SCORE_LABEL
    try:
        info = json.loads(path.read_text())
        value, label = info.get("ranking_score", "score"), str(info.get("score_label", DEFAULT_SCORE_LABEL))
    except (json.JSONDecodeError, AttributeError) as error:
        raise BundleError(path, f"not a method description ({error})") from error
    if value not in RANKING_SCORES:
        raise BundleError(path, f"ranking_score must be one of {RANKING_SCORES}, got {value!r}")
    return value, label


def time_per_image_ms(predictions_dir: Path, scenes: Sequence[Path]) -> float | None:
    """Mean alignment time per image in ms from <scene>/alignment.json timings; None unless every scene has one."""
    seconds = []
    for scene in scenes:
        path = Path(predictions_dir) / scene.name / "alignment.json"
        if not path.is_file():
            return None
        try:
            seconds.append(float(json.loads(path.read_text())["timings"]["total"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise BundleError(path, f"no readable timings.total ({error})") from error
    return 1000.0 * float(np.mean(seconds)) if seconds else None


@dataclass
class MethodScores:
    """One method's results: per scene (Table 1), per image and AP^mesh (Table 2), time per image in ms."""

    name: str
    predictions_dir: Path
    ranking_score: str
    score_label: str
    per_scene: AlignmentResults
    per_image: PerImageResults
    strict: StrictPerImageResults
    ap_mesh: MeshApResults | None
    time_ms: float | None

    def calibration_data(self) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """Correctness (N,) and scores {score_label: score, "2D detection score"} (N,) of the predictions
        that entered the per-scene accuracy; None when there are none."""
        outcomes = [outcome for outcome in self.per_scene.outcomes if outcome.status == "evaluated"]
        if not outcomes:
            return None
        correct = np.array([outcome.correct for outcome in outcomes], dtype=bool)
        scores = {
            self.score_label: np.array([_unit(outcome.score) for outcome in outcomes]),
            "2D detection score": np.array([_unit(outcome.detection_score) for outcome in outcomes]),
        }
        return correct, {label: values for label, values in scores.items() if np.all(np.isfinite(values))}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (fractions; NaN as None)."""
        return finite(
            {
                "predictions": str(self.predictions_dir),
                "ranking_score": self.ranking_score,
                "score_label": self.score_label,
                "time_ms": self.time_ms,
                "per_scene": self.per_scene.to_dict(),
                "per_image": self.per_image.to_dict(),
                "per_image_strict": self.strict.to_dict(),
                "ap_mesh": None if self.ap_mesh is None else self.ap_mesh.to_dict(),
            }
        )


def _unit(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def finite(value: Any) -> Any:
    """A JSON-ready copy of nested dicts / lists with NaN and infinities replaced by None."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def scene_ids(scenes: Sequence[Path]) -> dict[str, str]:
    """Bundle name -> scene id: camera.json's "scene_id", else the bundle's own name."""
    return {scene.name: bundle_scene_id(scene) or scene.name for scene in scenes}


def score_method(
    name: str,
    predictions_dir: Path,
    scenes: Sequence[Path],
    cads: CadIndex,
    preset: EvalPreset,
    caster: RayCaster | None = None,
    ranking_score: str | None = None,
    ap_points: int | None = N_POINTS,
) -> MethodScores:
    """Score the predictions in predictions_dir/<scene>/predictions.json of every scene (module docstring).

    ranking_score: None reads it from method.json (`method_info`). ap_points: surface samples per
    model of the AP^mesh F-scores; None skips AP^mesh. The caster (over `cads`) renders ground truth for
    the per-image filter; pass one to share it between methods.
    """
    predictions_dir = Path(predictions_dir)
    ranking, label = method_info(predictions_dir)
    ranking = ranking if ranking_score is None else ranking_score
    ranked = preset.with_options(ranking_score=ranking)
    scene_of = scene_ids(scenes)
    ground_truth = ground_truth_from_bundles(scenes, scene_of, cads)
    predictions = predictions_from_bundles(scenes, predictions_dir, scene_of, cads)
    per_scene = evaluate_scenes(predictions, ground_truth, ranked)
    frames = [image_frame_from_bundle(scene, predictions_dir / scene.name / "predictions.json") for scene in scenes]
    caster = RayCaster(cads) if caster is None else caster
    per_image = evaluate_per_image(frames, cads, ranked, min_detection_score=ranked.detection_threshold, caster=caster)
    ap = None
    if ap_points is not None:
        ap = evaluate_ap_mesh(per_image.assessments, cads, ranking_score=ranking, n_points=ap_points)
    return MethodScores(
        name=name,
        predictions_dir=predictions_dir,
        ranking_score=ranking,
        score_label=label,
        per_scene=per_scene,
        per_image=per_image,
        strict=strict_per_image(per_image.assessments, ranked, ranking),
        ap_mesh=ap,
        time_ms=time_per_image_ms(predictions_dir, scenes),
    )
