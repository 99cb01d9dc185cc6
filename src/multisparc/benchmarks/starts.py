"""How far the initial poses are from the truth: the paper's start against the observed start.

Over the scene bundles of a set (with gt.json; detections paired with ground truth by id, as synthetic
bundles number them), for each start: the median translation error (metres), rotation error (degrees, up
to the symmetry) and per-axis scale error of every detection's initial hypotheses. The hypotheses differ
in azimuth, so rotation is that of the hypothesis nearest the truth, and translation and scale are read
on that hypothesis too (the observed start places each hypothesis's centre by its own rotation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from multisparc.cad import CadIndex
from multisparc.datasets.bundle import read_bundle
from multisparc.geometry import Pose, pose_errors, quat_to_matrix
from multisparc.inference.initialisation import InitialisationConfig, initial_poses
from multisparc.inference.observed_start import observed_start
from multisparc.inference.pipeline import clip_detections
from multisparc.inference.stages import PipelineStages, observed_points

STARTS = ("paper", "observed")


@dataclass(frozen=True)
class StartErrors:
    """Median errors of one start over a set's detections: t metres, r_deg degrees, s relative."""

    start: str
    n_objects: int
    t: float
    r_deg: float
    s: float


def start_errors(scenes: Sequence[Path], cads: CadIndex, seed: int = 0) -> list[StartErrors]:
    """The paper's and the observed start's median errors over the bundles `scenes` (module docstring)."""
    config, icp = InitialisationConfig(), PipelineStages().icp
    errors: dict[str, list[tuple[float, float, float]]] = {name: [] for name in STARTS}
    for scene in scenes:
        bundle = read_bundle(scene)
        truth = {obj.id: obj for obj in bundle.gt or []}
        kept, _ = clip_detections(bundle.observation, bundle.detections)
        kept = [det for det in kept if det.id in truth]
        if not kept:
            continue
        paper = initial_poses(bundle.observation, kept, cads, config)
        points = observed_points(bundle.observation, kept, icp, seed)
        starts = {"paper": paper, "observed": observed_start(paper, points, kept, cads, bundle.observation)}
        for k, det in enumerate(kept):
            gt = truth[det.id]
            n_hyp = config.n_hypotheses
            R_gt = quat_to_matrix(torch.as_tensor(gt.q, dtype=torch.float64)).expand(n_hyp, 3, 3)
            gt_pose = Pose(R_gt, torch.as_tensor(gt.t).expand(n_hyp, 3), torch.as_tensor(gt.s).expand(n_hyp, 3))
            for name, init in starts.items():
                found = pose_errors(init.poses.index((slice(None), k)), gt_pose, gt.sym)
                h = int(torch.argmin(found["r_deg"]))
                errors[name].append((float(found["t"][h]), float(found["r_deg"][h]), float(found["s"][h])))
    results = []
    for name in STARTS:
        values = np.asarray(errors[name]).reshape(-1, 3)
        t, r, s = np.median(values, axis=0) if len(values) else (float("nan"),) * 3
        results.append(StartErrors(name, len(values), float(t), float(r), float(s)))
    return results
