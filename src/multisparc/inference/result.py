"""What one image's alignment returns: the chosen pose of every detection and how it was reached."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multisparc.datasets.bundle import BundleError, Detection, ObjectPose, pose_record
from multisparc.geometry import Pose
from multisparc.inference.initialisation import DepthSource, GravityEstimate, Initialisation

#: What the last trajectory step of a hypothesis can be, with the depth fit (`AlignmentResult.final_source`).
FINAL_SOURCES = ("network", "depth fit", "depth-only fit")


@dataclass
class SkippedDetection:
    """A detection that was not aligned, and why (it is absent from the predictions)."""

    id: int
    reason: str


@dataclass
class AlignmentResult:
    """Alignment of the K detections of one image (those not skipped, in input order).

    Attributes:
        objects: K chosen poses (camera frame; `score` = sigmoid of the scoring pass's logit).
        boxes: (K, 4) the detection boxes as used, clipped to the image, pixels.
        trajectory: poses of batch shape (S, H, K), S = n_refine + 1 passes, H hypotheses:
            trajectory[0] are the initial poses, trajectory[i] the poses after i updates; pass i of the
            network saw trajectory[i].
        logits: (S, H, K) the network's correctness logit at pass i for pose trajectory[i]; the last
            pass only scores (its update is not applied).
        chosen: (K,) int, the selected hypothesis per detection: of highest final score, or the first
            with `Aligner(select="first")`.
        surface_depth: (K,) metres, depth_source: the visible-surface depth of each initialisation.
        gravity: the up axis the initial rotations stand on.
        skipped: detections left out (box wholly outside the image), with the reason.
        timings: seconds per pipeline stage and their total (`StageTimer.to_dict`).
        stages: the test-time stages beyond the paper that ran ("start", "depth_mask", "verify", "fit",
            "depth_only", and "grid_lookup" when the fits' nearest CAD samples came from a table; empty for
            the paper's pipeline, `inference.stages`).
        geometric: (H, K) geometric agreement of each final hypothesis with the observation, or None when
            the verification did not run.
        final_source: (H, K) int, with the depth fit: which option each hypothesis's last trajectory step is,
            an index into FINAL_SOURCES (the network's refined pose, its depth fit, the depth-only fit);
            None when the fit did not run.
    """

    objects: list[ObjectPose]
    boxes: np.ndarray
    trajectory: Pose
    logits: np.ndarray
    chosen: np.ndarray
    surface_depth: np.ndarray
    depth_source: list[DepthSource]
    gravity: GravityEstimate
    skipped: list[SkippedDetection]
    timings: dict[str, float]
    stages: list[str] = field(default_factory=list)
    geometric: np.ndarray | None = None
    final_source: np.ndarray | None = None

    @classmethod
    def from_hypotheses(
        cls,
        detections: list[Detection],
        init: Initialisation,
        trajectory: Pose,
        logits: np.ndarray,
        chosen: np.ndarray,
        final_scores: np.ndarray,
        syms: list[str],
        skipped: list[SkippedDetection],
        timings: dict[str, float],
        stages: list[str] | None = None,
        geometric: np.ndarray | None = None,
        final_source: np.ndarray | None = None,
    ) -> AlignmentResult:
        """The result of refined hypotheses: each detection's chosen final pose becomes its ObjectPose.

        trajectory (S, H, K) and logits (S, H, K) as the attributes; chosen (K,) hypothesis indices;
        final_scores (K,) the chosen hypotheses' scores in [0, 1]; syms (K,) the CADs' symmetry tags;
        stages, geometric and final_source as the attributes.
        """
        final = trajectory.index((-1, torch.as_tensor(chosen), torch.arange(len(detections))))
        t, q, s = (value.numpy() for value in final.to_tqs())
        objects = [
            ObjectPose(
                id=det.id,
                category=det.category,
                cad=det.cad,
                t=t[k],
                q=q[k],
                s=s[k],
                sym=syms[k],
                score=float(final_scores[k]),
                detection_score=float(det.score),
            )
            for k, det in enumerate(detections)
        ]
        return cls(
            objects=objects,
            boxes=np.array([det.bbox for det in detections], dtype=np.float64).reshape(-1, 4),
            trajectory=trajectory,
            logits=logits,
            chosen=chosen,
            surface_depth=init.surface_depth,
            depth_source=init.depth_source,
            gravity=init.gravity,
            skipped=skipped,
            timings=timings,
            stages=list(stages or []),
            geometric=geometric,
            final_source=final_source,
        )

    def require_finite(self, scene: Path | str) -> None:
        """BundleError naming `scene` when a chosen pose is NaN or infinite (a broken network, or a diverged one):
        such poses must never be written."""
        bad = [obj.id for obj in self.objects if not all(np.all(np.isfinite(v)) for v in (obj.t, obj.q, obj.s))]
        if bad:
            raise BundleError(
                scene, f"alignment gave NaN or infinite poses for detection(s) {bad}: is the model file sound?"
            )

    @property
    def scores(self) -> np.ndarray:
        """(S, H, K) sigmoid of `logits`: the estimated probability that each pose is correct."""
        return 1.0 / (1.0 + np.exp(-self.logits))

    @property
    def hypothesis_scores(self) -> np.ndarray:
        """(H, K) final scores of every hypothesis (the selection criterion)."""
        return self.scores[-1]

    def chosen_trajectory(self) -> Pose:
        """Poses (S, K) of the chosen hypothesis of each detection through the passes."""
        n_objects = len(self.objects)
        return self.trajectory.index((slice(None), torch.as_tensor(self.chosen), torch.arange(n_objects)))

    def chosen_scores(self) -> np.ndarray:
        """(S, K) scores of the chosen hypothesis through the passes."""
        return self.scores[:, self.chosen, np.arange(len(self.objects))]

    def to_predictions(self) -> list[dict[str, Any]]:
        """`predictions.json` records (DESIGN / docs/CONVENTIONS.md): id, category, cad, t, q, s, sym, score,
        detection_score, plus diagnostics: `hypothesis` (chosen index), `hypothesis_scores` (H final
        scores), `iterations` (the chosen hypothesis's poses through the passes, the first being its
        initialisation, each with t, q, s and the score the network gave it; with the depth fit, the last
        is the fitted pose or the network's again), and with the verification `geometric_score` (of the
        chosen pose) and `final_source` (which option the final pose is: "network", "depth fit",
        "depth-only fit")."""
        trajectory = self.chosen_trajectory()
        t, q, s = (value.numpy() for value in trajectory.to_tqs())
        scores = self.chosen_scores()
        records = []
        for k, obj in enumerate(self.objects):
            record = pose_record(obj)
            record["hypothesis"] = int(self.chosen[k])
            record["hypothesis_scores"] = [float(v) for v in self.hypothesis_scores[:, k]]
            record["iterations"] = [
                {"t": t[i, k].tolist(), "q": q[i, k].tolist(), "s": s[i, k].tolist(), "score": float(scores[i, k])}
                for i in range(len(trajectory.t))
            ]
            if self.geometric is not None:
                record["geometric_score"] = float(self.geometric[self.chosen[k], k])
            if self.final_source is not None:
                record["final_source"] = FINAL_SOURCES[int(self.final_source[self.chosen[k], k])]
            records.append(record)
        return records

    def diagnostics(self) -> dict[str, Any]:
        """Per-image facts that belong to no single prediction, as JSON-ready values."""
        return {
            "up": self.gravity.up.tolist(),
            "up_source": self.gravity.source,
            "n_hypotheses": int(self.logits.shape[1]),
            "n_passes": int(self.logits.shape[0]),
            "surface_depth": {
                str(obj.id): {"depth": float(depth), "source": source}
                for obj, depth, source in zip(self.objects, self.surface_depth, self.depth_source, strict=True)
            },
            "skipped": [{"id": skip.id, "reason": skip.reason} for skip in self.skipped],
            "timings": dict(self.timings),
            "stages": list(self.stages),
        }
