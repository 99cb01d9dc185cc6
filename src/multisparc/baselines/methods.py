"""The alignment methods of the benchmark tables, by name (the rows of the paper's Table 1).

====================  ==============================================  ==================  ==============
name                  what runs                                       pose of a detection ranked by
====================  ==============================================  ==================  ==============
``multisparc``        the full pipeline: masks from the depth for     highest fused       learned score
                      boxes without one, objects jointly through 3    (learned +
                      refinements + 1 scoring pass, geometric         geometric) score
                      verification, depth fits and depth-only fits
                      (`Aligner(pipeline="full")`)
``multisparc-paper``  the paper's Multi-SPARC: paper start,           highest learned     learned score
                      network, learned score (`pipeline="paper"`)     score
``+start``            multisparc-paper with the observed start        highest learned     learned score
``+mask``             multisparc-paper with masks from the depth      highest learned     learned score
                      for boxes without one                           score
``+verify``           multisparc-paper with the verification          highest fused       learned score
``+fit``              multisparc-paper with verification and fit      highest fused       learned score
``single``            SPARC-style: every (object, hypothesis)         highest learned     learned score
                      refined alone, one forward pass at a time       score
                      (`mode="single", sequential=True`, paper)
``2d-score``          as multisparc-paper, but the pose is not        first hypothesis    2D detection
                      chosen by the learned score                     (azimuth 0)         score
``initial``           the paper's initial hypotheses, no refinement   highest learned     learned score
                      (`n_refine=0`: only the scoring pass)           score
``icp``               the depth-only ICP baseline (`baselines.icp`)   best ICP fit        ICP fit score
``icp-back-faces``    icp pairing points with back-facing CAD         best ICP fit        ICP fit score
                      samples too (`IcpConfig.back_faces`)
====================  ==============================================  ==================  ==============

The network's own rows (multisparc-paper, single, 2d-score, initial) run the paper's pipeline, so what the
learned part does stays visible next to what the test-time stages add (`inference.stages`).

The 2D detection score is the same for the 4 hypotheses of a detection, so it cannot choose among them:
``2d-score`` takes the hypothesis of the first initialisation (gravity-aligned azimuth 0) after the
refinement, and the evaluation ranks its predictions (score filter, 3D NMS, the per-class cap) by the
detection score (`MethodSpec.ranking_score`) instead of the learned one it still records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from multisparc.baselines.icp import IcpAligner
from multisparc.cad import CadIndex
from multisparc.datasets.bundle import Detection, Observation
from multisparc.inference import Aligner, AlignmentResult
from multisparc.inference.depth_fit import IcpConfig
from multisparc.inputs import InputConfig
from multisparc.model import MultiSparcNet

RankingScore = Literal["score", "detection_score"]


class Method(Protocol):
    """What every method offers: alignment of one image's detections."""

    def align(
        self, observation: Observation, detections: Sequence[Detection], scene_dir: str | Path | None = None
    ) -> AlignmentResult: ...


@dataclass(frozen=True)
class MethodSpec:
    """A named method: whether it needs a trained network, the score its predictions are ranked by in the
    evaluation, what their `score` is (for plots), the `Aligner` options it uses (none for the ICP
    baselines) and the `IcpConfig` fields an ICP baseline changes."""

    name: str
    description: str
    needs_network: bool
    ranking_score: RankingScore = "score"
    score_label: str = "classification score"
    aligner_options: dict[str, Any] = field(default_factory=dict)
    icp_config: dict[str, Any] = field(default_factory=dict)


_SPECS = (
    MethodSpec(
        "multisparc",
        "Multi-SPARC with the test-time stages: depth masks, verification, depth fits",
        True,
        aligner_options={"mode": "joint", "pipeline": "full"},
    ),
    MethodSpec(
        "multisparc-exact",
        "multisparc with the nearest CAD samples of its fits and scores from exact kd trees (slower)",
        True,
        aligner_options={"mode": "joint", "pipeline": "exact"},
    ),
    MethodSpec(
        "multisparc-paper",
        "Multi-SPARC as in the paper, objects aligned jointly",
        True,
        aligner_options={"mode": "joint", "pipeline": "paper"},
    ),
    MethodSpec(
        "multisparc-no-room", "multisparc without the depth's error read from the room", True,
        aligner_options={"mode": "joint", "pipeline": "full-no-room"},
    ),
    MethodSpec("+start", "multisparc-paper with the observed start", True, aligner_options={"pipeline": "+start"}),
    MethodSpec(
        "+mask", "multisparc-paper with masks from the depth for boxes without one", True,
        aligner_options={"pipeline": "+mask"},
    ),
    MethodSpec(
        "+verify", "multisparc-paper with the geometric verification", True, aligner_options={"pipeline": "+verify"}
    ),
    MethodSpec(
        "+fit", "multisparc-paper with the verification and the depth fit", True, aligner_options={"pipeline": "+fit"}
    ),
    MethodSpec(
        "single",
        "SPARC-style, every object and hypothesis alone",
        True,
        aligner_options={"mode": "single", "sequential": True, "pipeline": "paper"},
    ),
    MethodSpec(
        "2d-score",
        "joint refinement, first hypothesis, ranked by the 2D detection score",
        True,
        ranking_score="detection_score",
        aligner_options={"mode": "joint", "select": "first", "pipeline": "paper"},
    ),
    MethodSpec(
        "initial",
        "initial poses only, chosen by the learned score",
        True,
        aligner_options={"n_refine": 0, "pipeline": "paper"},
    ),
    MethodSpec("icp", "depth-only ICP baseline", False, score_label="ICP fit score"),
    MethodSpec(
        "icp-back-faces",
        "depth-only ICP baseline pairing back-facing CAD samples too",
        False,
        score_label="ICP fit score",
        icp_config={"back_faces": True},
    ),
)
METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in _SPECS}


def method_spec(name: str) -> MethodSpec:
    """The spec of method `name`; ValueError naming the known methods otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[name]


def make_method(
    name: str,
    cads: CadIndex,
    network: tuple[MultiSparcNet, InputConfig] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    n_hypotheses: int = 4,
    n_refine: int = 3,
) -> Method:
    """The aligner of method `name` over the CAD index; `network` (from `load_checkpoint`, shared by the
    methods) is required by every method but icp. n_hypotheses and n_refine set the network methods'
    initial azimuths and refinements (a method that fixes its own, as `initial` does, keeps it)."""
    spec = method_spec(name)
    if not spec.needs_network:
        return IcpAligner(cads, IcpConfig(**spec.icp_config), seed=seed)
    if network is None:
        raise ValueError(f"method {name!r} needs a trained network (a checkpoint, model.pt)")
    model, input_config = network
    options = {"n_hypotheses": n_hypotheses, "n_refine": n_refine, **spec.aligner_options}
    return Aligner(model, input_config, cads, device=device, seed=seed, **options)
