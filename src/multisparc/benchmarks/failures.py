"""Where a method's poses fail: every prediction of a `multisparc evaluate` method folder against the ground
truth of the object it was made for, sorted into kinds of failure.

The benchmark sets' detections carry the ids of their objects (`benchset`), so a prediction is paired with
the ground-truth pose of the same id; spurious detections (ids without one) and objects no detection found
are left out: this is about the poses, not the matching (the evaluate sections score that). Errors and
thresholds as the evaluation's (`evaluation.object_errors.compare_poses`: per-axis scale, symmetry-aware
rotation; 20 cm, 20 deg, 20 %). A pose whose rotation is wrong is counted by its rotation error alone (its
translation error is then mostly the CAD's off-centre origin turned about): a flip (150 to 180 deg: the
model turned round, front for back), a quarter turn (60 to 120 deg: width for depth), or another rotation;
a pose with the rotation right fails by its translation, its scale, or both.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from multisparc.benchmarks.report import markdown_table
from multisparc.datasets.bundle import BundleError, read_poses
from multisparc.evaluation.object_errors import compare_poses, object_poses
from multisparc.geometry import DEFAULT_THRESHOLDS

KINDS = ("aligned", "flip", "quarter turn", "other rotation", "translation", "scale", "translation and scale")


@dataclass(frozen=True)
class Outcome:
    """One prediction against its object's ground truth: errors (metres, degrees, per-axis scale ratio), its
    kind (one of `KINDS`) and which candidate the pipeline kept (`final_source` of predictions.json, "-"
    where the method does not say)."""

    category: str
    source: str
    t: float
    r_deg: float
    s: float
    kind: str


def failure_kind(t: float, r_deg: float, s: float) -> str:
    """The kind (one of `KINDS`) of a pose with these errors (module docstring)."""
    bounds = DEFAULT_THRESHOLDS
    if r_deg > bounds.r_deg:
        if r_deg >= 150.0:
            return "flip"
        return "quarter turn" if 60.0 <= r_deg <= 120.0 else "other rotation"
    t_wrong, s_wrong = t > bounds.t, s > bounds.s
    if t_wrong and s_wrong:
        return "translation and scale"
    return "translation" if t_wrong else "scale" if s_wrong else "aligned"


def scene_outcomes(gt_json: Path, predictions_json: Path) -> list[Outcome]:
    """The outcomes of one scene's predictions, paired with gt.json by id; BundleError naming a missing file."""
    for path in (gt_json, predictions_json):
        if not path.is_file():
            raise BundleError(path, "no such file")
    truth = {pose.id: pose for pose in read_poses(gt_json)}
    predicted = [pose for pose in read_poses(predictions_json) if pose.id in truth]
    if not predicted:
        return []
    objects = [truth[pose.id] for pose in predicted]
    errors = compare_poses(object_poses(predicted), object_poses(objects), [o.sym for o in objects])
    return [
        Outcome(
            o.category, str(pose.extras.get("final_source", "-")), e.t, e.r_deg, e.s, failure_kind(e.t, e.r_deg, e.s)
        )
        for pose, o, e in zip(predicted, objects, errors, strict=True)
    ]


def method_outcomes(results: Path, method: str) -> list[Outcome]:
    """The outcomes of `method` in the evaluate output folder `results` (its results.json names the scenes)."""
    record_path = Path(results) / "results.json"
    if not record_path.is_file():
        raise FileNotFoundError(f"{record_path}: no such file (run multisparc evaluate --out {results} first)")
    scenes = Path(json.loads(record_path.read_text())["scenes"])
    folder = Path(results) / method
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (the method {method!r} did not run in {results})")
    outcomes = []
    for scene in sorted(path for path in folder.iterdir() if (path / "predictions.json").is_file()):
        outcomes += scene_outcomes(scenes / scene.name / "gt.json", scene / "predictions.json")
    return outcomes


def _row(name: str, outcomes: list[Outcome]) -> list[object]:
    """A table row: name, objects, then the share (%) of each kind."""
    counts = Counter(outcome.kind for outcome in outcomes)
    return [name, len(outcomes)] + [f"{100 * counts[kind] / max(len(outcomes), 1):.1f}" for kind in KINDS]


def failure_tables(by_set: dict[str, list[Outcome]]) -> str:
    """Markdown: the share of each kind per set, per class and per kept candidate (the last two over all
    sets together)."""
    header = ["objects"] + [f"{kind} %" for kind in KINDS]
    every = [outcome for outcomes in by_set.values() for outcome in outcomes]

    def grouped(key: str) -> Iterable[tuple[str, list[Outcome]]]:
        for value in sorted({getattr(outcome, key) for outcome in every}):
            yield value, [outcome for outcome in every if getattr(outcome, key) == value]

    return "\n".join(
        [
            markdown_table(["set", *header], [_row(name, outcomes) for name, outcomes in by_set.items()]),
            "",
            "By class, all sets together:",
            "",
            markdown_table(["class", *header], [_row(name, outcomes) for name, outcomes in grouped("category")]),
            "",
            "By the candidate the pipeline kept (`final_source`), all sets together:",
            "",
            markdown_table(["kept", *header], [_row(name, outcomes) for name, outcomes in grouped("source")]),
            "",
        ]
    )
