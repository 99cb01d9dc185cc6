"""Test-time alignment (paper Sec. 3.3, Fig. 4a): initial hypotheses, iterative refinement with
Multi-SPARC-Net, selection by the learned classification score, timings and overlay pictures.

    from multisparc.inference import align
    result = align("scene_dir", "cads.json", "model.pt")
    write_poses(Path("predictions.json"), result.objects)   # or result.to_predictions() with diagnostics
"""

from multisparc.inference.checkpoint import load_checkpoint, shipped_checkpoint
from multisparc.inference.initialisation import (
    GravityEstimate,
    Initialisation,
    InitialisationConfig,
    gravity_up,
    initial_poses,
    surface_depth,
    up_from_normals,
    up_of_pitch,
)
from multisparc.inference.overlay import render_overlay
from multisparc.inference.pipeline import MODES, PRECISIONS, SELECTIONS, Aligner, align
from multisparc.inference.result import AlignmentResult, SkippedDetection
from multisparc.inference.timers import StageTimer

__all__ = [
    "MODES",
    "PRECISIONS",
    "SELECTIONS",
    "Aligner",
    "AlignmentResult",
    "GravityEstimate",
    "Initialisation",
    "InitialisationConfig",
    "SkippedDetection",
    "StageTimer",
    "align",
    "gravity_up",
    "initial_poses",
    "load_checkpoint",
    "render_overlay",
    "shipped_checkpoint",
    "surface_depth",
    "up_from_normals",
    "up_of_pitch",
]
