"""The three per-scene evaluation protocols of the field, as presets.

All three call an alignment correct when the translation error is at most 20 cm, the rotation error at
most 20 deg and the scale error at most 20 %, and all match greedily (each ground-truth object at most
once, predictions in order, the first unmatched ground truth of the same class within the thresholds).
They differ in the details below, each mirroring one published script:

=====================  =======================  =======================  =======================
                       ``scan2cad``             ``roca``                 ``sparc``
=====================  =======================  =======================  =======================
classes reported       8 (no bed) + "other"     9                        9
translation of GT      t - R (s * centre)       t                        t
scale error            abs(mean(s / s_gt) - 1)  abs(mean(s / s_gt) - 1)  mean(abs(s / s_gt - 1))
symmetry used          the predicted CAD's      only if shared           only if shared
score filter           none                     detection score > 0.5    detection score > 0.5
order of predictions   as given (file order)    by ranking score         by ranking score
3D NMS                 none                     0.4 m, 60 deg, 0.6       0.4 m, 60 deg, 0.6
cap per scene          per CAD model            per class                per class
scenes counted         with predictions         all ground-truth scenes  with predictions
class mean over        classes incl. "other"    9 classes                9 classes
=====================  =======================  =======================  =======================

- ``scan2cad``: `Routines/Script/EvaluateBenchmark.py` of Scan2CAD (the official benchmark script).
  Classes are its `get_top8_classes_scannet` (bin is called "trashbin"; bed and every other synset
  count as "other"). Its ground-truth translation is that of `compose_mat4(t, q, s, -center)`, i.e.
  `t - R (s * center)` with `center` the CAD's bounding-box centre in its own frame; predicted
  translations are compared as submitted. The rotation error uses the symmetry annotated for the
  predicted CAD. A scene's CSV rows are read in file order; a CAD model is used at most as often as it
  appears in the scene's annotation (`cad_appearances.json`), so rows of a CAD absent from the scene
  are dropped. Instance accuracy and per-class counts cover the scenes that have a CSV file.
- ``roca``: `network/roca/evaluation/vid2cad_evaluation.py` of ROCA (`Vid2CADEvaluator`): the 9 classes
  of `CAD_TAXONOMY`, no centre offset, the symmetry only when the predicted CAD's tag equals the
  ground truth's, predictions with score > 0.5 sorted by score, 3D NMS against every kept prediction of
  the same class (translation <= 0.4 m, `abs(mean(s_kept / s) - 1)` <= 0.6, rotation <= 60 deg under the
  kept CAD's symmetry), then at most as many predictions per class as ground-truth objects. Scenes
  without predictions still count (its `exclude` list). Reports per class, the class mean over 9, the
  benchmark mean over 8 (no bed) and the instance accuracy. ROCA adds the counts of scenes without
  predictions only to classes seen elsewhere; on ScanNet every class is seen, and here every class counts.
- ``sparc``: SPARC's `SPARC/evaluate/scannet/` (`cluster_3d.py`, `scan2cad_constraint.py`,
  `EvaluateBenchmark.py`): ROCA's filtering, NMS and per-class cap, its symmetry rule and no centre
  offset (the script comments out `-center`), the per-axis scale error, the 9 classes (bed included,
  "other" not counted), and only the scenes with predictions. This is the paper's Table 1.

Two options apply to every preset: `ranking_score` (the learned classification score by default, or
the 2D detection score: the paper's ablation, Table 1 "2D confidence") and `require_same_cad` (ROCA's
`exact_ret`, SPARC's `force_same_retrieval`: a match must also have the ground truth's CAD model).

Rotation errors, as in all three scripts, are the minimum over the ground truth turned about its up
axis by its symmetry; a continuous symmetry is sampled every 10 deg (36 rotations), as the scripts do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from multisparc.categories import CATEGORIES
from multisparc.geometry import DEFAULT_THRESHOLDS, AlignmentThresholds, ScaleMode

RankingScore = Literal["score", "detection_score"]
SymmetryRule = Literal["prediction", "shared"]
CapRule = Literal["per_cad", "per_class"]
SceneRule = Literal["submitted", "all"]

RANKING_SCORES: tuple[str, ...] = ("score", "detection_score")
OTHER = "other"
#: The Scan2CAD benchmark classes: the 9 without bed.
BENCHMARK_CLASSES: tuple[str, ...] = tuple(name for name in CATEGORIES if name != "bed")


@dataclass(frozen=True)
class NmsThresholds:
    """Two predictions of one class are duplicates when every difference is at most its threshold:
    translation t metres, rotation r_deg degrees, scale s as abs(mean(s_kept / s) - 1)."""

    t: float = 0.4
    r_deg: float = 60.0
    s: float = 0.6


@dataclass(frozen=True)
class EvalPreset:
    """One per-scene evaluation protocol (see the module docstring for the three of the field).

    Attributes:
        name: preset name.
        classes: the classes reported by name, in report order.
        other_class: objects of any other class are reported together as "other" (else left out).
        class_labels: names the preset's script prints for some classes (scan2cad: bin -> trashbin).
        gt_centre_offset: compare predicted translations with `t - R (s * centre)` of the ground truth.
        scale_mode: "mean_ratio" or "per_axis" (`multisparc.geometry.scale_error`).
        symmetry: "prediction": the predicted CAD's symmetry; "shared": a symmetry only when the
            predicted CAD and the ground truth have the same tag.
        detection_threshold: keep predictions whose detection score exceeds it (None: keep all).
        sort_by_score: rank predictions by `ranking_score` (else keep the given order).
        nms: 3D non-maximum suppression thresholds, or None for none.
        cap: "per_cad": at most as many predictions of a CAD model as the scene has of it;
            "per_class": at most as many of a class as the scene has ground-truth objects of it.
        scenes: "submitted": count the scenes that have predictions; "all": every ground-truth scene.
        class_mean_includes_other: "other" enters the class mean (scan2cad's script).
        thresholds: the alignment thresholds (0.2 m, 20 deg, 20 %).
        ranking_score: "score" (learned classification score) or "detection_score" (2D detector).
        require_same_cad: a match must also have the ground truth's CAD model.
    """

    name: str
    classes: tuple[str, ...]
    other_class: bool
    gt_centre_offset: bool
    scale_mode: ScaleMode
    symmetry: SymmetryRule
    detection_threshold: float | None
    sort_by_score: bool
    nms: NmsThresholds | None
    cap: CapRule
    scenes: SceneRule
    class_mean_includes_other: bool
    class_labels: dict[str, str] = field(default_factory=dict)
    thresholds: AlignmentThresholds = DEFAULT_THRESHOLDS
    ranking_score: RankingScore = "score"
    require_same_cad: bool = False

    def __post_init__(self) -> None:
        if self.ranking_score not in RANKING_SCORES:
            raise ValueError(f"unknown ranking score {self.ranking_score!r}; expected one of {RANKING_SCORES}")

    @property
    def reported_classes(self) -> tuple[str, ...]:
        """Every class a result may have, in report order ("other" last when reported)."""
        return (*self.classes, OTHER) if self.other_class else self.classes

    def report_class(self, category: str) -> str | None:
        """The class under which an object of `category` is reported, or None when it is not evaluated."""
        if category in self.classes:
            return category
        return OTHER if self.other_class else None

    def label(self, report_class: str) -> str:
        """The name the preset's script prints for a reported class."""
        return self.class_labels.get(report_class, report_class)

    def with_options(
        self, ranking_score: RankingScore | None = None, require_same_cad: bool | None = None
    ) -> EvalPreset:
        """This preset with another ranking score and/or CAD-identity requirement."""
        changes: dict[str, object] = {}
        if ranking_score is not None:
            changes["ranking_score"] = ranking_score
        if require_same_cad is not None:
            changes["require_same_cad"] = require_same_cad
        return dataclasses.replace(self, **changes)


SCAN2CAD = EvalPreset(
    name="scan2cad",
    classes=BENCHMARK_CLASSES,
    other_class=True,
    class_labels={"bin": "trashbin"},
    gt_centre_offset=True,
    scale_mode="mean_ratio",
    symmetry="prediction",
    detection_threshold=None,
    sort_by_score=False,
    nms=None,
    cap="per_cad",
    scenes="submitted",
    class_mean_includes_other=True,
)

ROCA = EvalPreset(
    name="roca",
    classes=CATEGORIES,
    other_class=False,
    gt_centre_offset=False,
    scale_mode="mean_ratio",
    symmetry="shared",
    detection_threshold=0.5,
    sort_by_score=True,
    nms=NmsThresholds(),
    cap="per_class",
    scenes="all",
    class_mean_includes_other=False,
)

SPARC = dataclasses.replace(ROCA, name="sparc", scale_mode="per_axis", scenes="submitted")

PRESETS: dict[str, EvalPreset] = {preset.name: preset for preset in (SCAN2CAD, ROCA, SPARC)}


def get_preset(name: str, ranking_score: RankingScore = "score", require_same_cad: bool = False) -> EvalPreset:
    """The preset called `name` ("scan2cad", "roca", "sparc") with the given options."""
    if name not in PRESETS:
        raise ValueError(f"unknown evaluation preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name].with_options(ranking_score=ranking_score, require_same_cad=require_same_cad)
