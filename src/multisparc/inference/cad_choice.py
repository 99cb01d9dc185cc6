"""Choosing the CAD model of detections that give a category only (`multisparc align --choose-cad K`).

For every detection to choose for (those without a CAD, or all with `choose_all`), the candidates are the
models of its class in the CAD index: all of them when the class has at most K, else the K of smallest prior
distance (`inference.cad_prior`: by default the geometric score of each model's depth-only fits; or the models'
proportions against the observed points'). Then K passes of
the aligner's own pipeline: pass c aligns candidate c of every detection that has one, all objects of the
image jointly as usual (the network sees them together; hypotheses and chunks stay in the batch). Detections
that keep their given CAD are aligned once, in pass 0, beside the first candidates. Per detection the
candidate whose final pose scores highest wins: by its geometric verification score, with the network's learned
logit to part near-equal ones (`learned logit + CAD_FUSION_WEIGHT x geometric score`); with a pipeline without
verification (`paper`), by the learned logit alone. The network learned its score on poses of the true CAD
only, and it ranks other models poorly: on the choose-cad benchmark's scenes (30 a set, K = 10) the weight of the
hypotheses' choice (20) chose a candidate aligned by physical size for 77.9 % of the procedural objects, 160
for 80.5 %, the learned logit alone for 66.2 % (strict by the models' own scales: 64.9 / 70.1 / 57.1 %;
SweetHome3D, strict: 35.6 / 37.0 / 32.9 %).

The candidates are ranked by the prior, aligned and scored with the geometric tolerance's floor at CHOICE_TAU
(noisy depth still widens it, `PipelineStages.noise_tau`), narrower than the pipeline's 7 cm
(`stages.STAGE_ICP`): the wider floor serves the choice among one model's poses, where a few centimetres of
shape or scale mismatch are no error; between models that mismatch is the signal. On the choose-cad
benchmark's RGB-D files, the 7 cm floor chose a candidate aligned by physical size for 5 objects fewer in each
library (of 77 and 73) than this one.

Cost: K passes of the pipeline over the detections to choose for, so about K times the time per object of
aligning with given CADs, plus the prior (the fit prior: about 60 ms per model of the class; BENCHMARKS.md,
"choose-cad").

The result is one `AlignmentResult` in the detections' order, each object's trajectory, scores and
diagnostics those of its winning pass; a chosen object's `extras["cad_choice"]` lists every candidate with its
scores, best first (`predictions.json`, docs/INPUTS.md).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from multisparc.cad import CadIndex
from multisparc.datasets.bundle import BundleError, Detection, Observation
from multisparc.geometry import Pose
from multisparc.inference.cad_prior import CAD_PRIORS, rank_cads, rank_cads_by_fit
from multisparc.inference.depth_mask import with_depth_masks
from multisparc.inference.initialisation import gravity_up
from multisparc.inference.pipeline import Aligner, clip_detections
from multisparc.inference.result import AlignmentResult, SkippedDetection
from multisparc.inference.stages import observed_points

#: Weight of the geometric score against the learned logit when ranking candidate CADs (module docstring).
CAD_FUSION_WEIGHT = 160.0
#: The least tau (metres) of the candidates' geometric scores and fits, below the pipeline's own (module docstring).
CHOICE_TAU = 0.05


@dataclass(frozen=True)
class CandidateScore:
    """One aligned candidate CAD of a detection.

    cad: its id. score: the learned score of its final pose in [0, 1]. geometric: its geometric verification
    score in [0, 1] (None without verification). choice: what the candidates are ranked by (module
    docstring). prior: its prior distance (None when the class had at most K models or no observed points).
    """

    cad: str
    score: float
    geometric: float | None
    choice: float
    prior: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of `predictions.json`'s "cad_choice" candidates."""
        return {
            "cad": self.cad,
            "score": self.score,
            "geometric_score": self.geometric,
            "choice_score": self.choice,
            "prior_distance": self.prior,
        }


def candidates(
    observation: Observation,
    detections: Sequence[Detection],
    cads: CadIndex,
    k: int,
    aligner: Aligner,
    detections_file: Path | str | None = None,
    prior: str = CAD_PRIORS[0],
) -> list[list[tuple[str, float | None]]]:
    """The candidate CADs of each detection (boxes inside the image): its class's models, the K nearest by the
    prior (`cad_prior.CAD_PRIORS`) when the class has more (module docstring), each with its prior distance (None
    when not ranked).

    Raises BundleError naming `detections_file` (else the CAD index) for a class without a model in `cads`.
    """
    if prior not in CAD_PRIORS:
        raise ValueError(f"unknown CAD prior {prior!r}; expected one of {', '.join(CAD_PRIORS)}")
    ranked: list[list[tuple[str, float | None]]] = []
    up, masked = None, None
    for n, det in enumerate(detections):
        ids = cads.ids_of(det.category)
        if not ids:
            where = detections_file if detections_file is not None else cads.source
            raise BundleError(
                where, f"detection {det.id}: the CAD index {cads.source} holds no CAD of category {det.category!r}"
            )
        if len(ids) <= k:
            ranked.append([(cad_id, None) for cad_id in ids])
            continue
        if masked is None:  # the prior reads the objects' points, not the boxes' background
            up = gravity_up(observation, aligner.initialisation).up
            masked = with_depth_masks(observation, detections, up)
        points = observed_points(observation, [masked[n]], aligner.stages.icp, aligner.seed)[0]
        if prior == "fit":
            order = rank_cads_by_fit(observation, masked[n], points, cads, ids, aligner.stages, aligner.initialisation)
        else:
            order = rank_cads(points, up, cads, ids)
        ranked.append(order[:k])
    return ranked


def choose_cads(
    aligner: Aligner,
    observation: Observation,
    detections: Sequence[Detection],
    k: int,
    choose_all: bool = False,
    detections_file: Path | str | None = None,
    scene_dir: Path | str | None = None,
    prior: str = CAD_PRIORS[0],
) -> AlignmentResult:
    """Align `detections`, choosing the CAD of those without one (all with `choose_all`) among at most `k`
    candidates of their class ranked by `prior` (module docstring). detections_file names the detections in
    errors; scene_dir the bundle (as in `Aligner.align`)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of candidate CADs must be a positive integer, got {k!r}")
    started = time.perf_counter()
    aligner = _choosing(aligner)
    kept, skipped = clip_detections(observation, detections)
    choosing = [i for i, det in enumerate(kept) if choose_all or det.cad is None]
    fixed = [i for i, det in enumerate(kept) if not (choose_all or det.cad is None)]
    if not choosing:
        result = aligner.align(observation, kept, scene_dir)
        result.skipped = skipped + result.skipped
        return result
    pool = candidates(observation, [kept[i] for i in choosing], aligner.cads, k, aligner, detections_file, prior)
    prior_seconds = time.perf_counter() - started

    # (detection index, candidate index) -> (pass result, object index in it)
    where: dict[tuple[int, int], tuple[AlignmentResult, int]] = {}
    results = []
    for c in range(max(len(options) for options in pool)):
        members = [(i, None) for i in fixed] if c == 0 else []
        members += [(i, n) for n, i in enumerate(choosing) if len(pool[n]) > c]
        batch = [kept[i] if n is None else replace(kept[i], cad=pool[n][c][0]) for i, n in members]
        result = aligner.align(observation, batch, scene_dir)
        results.append(result)
        for position, (i, n) in enumerate(members):
            where[i, -1 if n is None else c] = (result, position)

    parts, choices = [], {}
    for i in range(len(kept)):
        if i in fixed:
            parts.append(where[i, -1])
            continue
        n = choosing.index(i)
        scored = [
            _candidate_score(*where[i, c], cad_id, distance, aligner) for c, (cad_id, distance) in enumerate(pool[n])
        ]
        best = int(np.argmax([candidate.choice for candidate in scored]))  # the first of equal scores
        parts.append(where[i, best])
        choices[i] = sorted(scored, key=lambda candidate: -candidate.choice)
    merged = _merge(parts, skipped, results, prior_seconds)
    for i, ranked in choices.items():
        merged.objects[i].extras["cad_choice"] = {
            "k": k,
            "rule": _rule(aligner),
            "candidates": [candidate.to_dict() for candidate in ranked],
        }
    return merged


def _choosing(aligner: Aligner) -> Aligner:
    """The aligner of the candidates' passes: `aligner` with its stages' tau floor (`icp.inlier_distance`) at
    CHOICE_TAU (module docstring); `aligner` itself when it is there already."""
    icp = aligner.stages.icp
    if icp.inlier_distance == CHOICE_TAU:
        return aligner
    choosing = copy.copy(aligner)
    choosing.stages = replace(aligner.stages, icp=replace(icp, inlier_distance=CHOICE_TAU))
    return choosing


def _rule(aligner: Aligner) -> str:
    """What the candidates were ranked by, for the record."""
    if aligner.stages.verify:
        return f"learned logit + {CAD_FUSION_WEIGHT:g} x geometric score"
    return "learned logit"


def _candidate_score(
    result: AlignmentResult, k: int, cad_id: str, prior: float | None, aligner: Aligner
) -> CandidateScore:
    """The scores of object k of a pass's result (module docstring)."""
    hypothesis = int(result.chosen[k])
    logit = float(result.logits[-1, hypothesis, k])
    geometric = None if result.geometric is None else float(result.geometric[hypothesis, k])
    choice = logit if geometric is None else logit + CAD_FUSION_WEIGHT * geometric
    return CandidateScore(cad_id, float(1.0 / (1.0 + np.exp(-logit))), geometric, choice, prior)


def _merge(
    parts: list[tuple[AlignmentResult, int]],
    skipped: list[SkippedDetection],
    results: list[AlignmentResult],
    prior_seconds: float,
) -> AlignmentResult:
    """One result of the objects `parts` (each a pass's result and the object's index in it), in that order;
    timings summed over every pass, with the prior's own."""
    first = results[0]
    timings: dict[str, float] = {}
    for result in results:
        for name, seconds in result.timings.items():
            timings[name] = timings.get(name, 0.0) + seconds
    timings["cad prior"] = prior_seconds
    timings["total"] = timings.get("total", 0.0) + prior_seconds
    geometric = [result.geometric for result, _ in parts]
    final_source = [result.final_source for result, _ in parts]
    return AlignmentResult(
        objects=[replace(result.objects[k], extras=dict(result.objects[k].extras)) for result, k in parts],
        boxes=np.array([result.boxes[k] for result, k in parts], dtype=np.float64).reshape(-1, 4),
        trajectory=Pose.cat([result.trajectory.index((..., slice(k, k + 1))) for result, k in parts], dim=2),
        logits=np.concatenate([result.logits[:, :, k : k + 1] for result, k in parts], axis=2),
        chosen=np.array([result.chosen[k] for result, k in parts], dtype=np.int64),
        surface_depth=np.array([result.surface_depth[k] for result, k in parts], dtype=np.float64),
        depth_source=[result.depth_source[k] for result, k in parts],
        gravity=first.gravity,
        skipped=list(skipped),
        timings=timings,
        stages=list(first.stages),
        geometric=None if any(g is None for g in geometric) else np.concatenate(
            [g[:, k : k + 1] for g, (_, k) in zip(geometric, parts, strict=True)], axis=1
        ),
        final_source=None if any(f is None for f in final_source) else np.concatenate(
            [f[:, k : k + 1] for f, (_, k) in zip(final_source, parts, strict=True)], axis=1
        ),
    )
