"""Training of Multi-SPARC-Net: examples, losses, optimizer and checkpoints.

`multisparc.training.trainer.train(config, out_dir, resume)` runs a training (`multisparc train` on the
command line) with a `multisparc.training.config.TrainConfig`. Those modules and the data stream
(`multisparc.training.data`) are not imported here, so that loading a shipped model does not pull in
the renderer and the scene sampler.
"""

from multisparc.training.checkpoint import CheckpointError, export_model, load_checkpoint, load_model_file
from multisparc.training.examples import (
    CLASSIFIER_REGIONS,
    PoseRegion,
    sample_classifier_poses,
    sample_update_poses,
)
from multisparc.training.lamb import Lamb
from multisparc.training.losses import (
    LABEL_THRESHOLDS,
    alignment_loss,
    classifier_labels,
    classifier_loss,
    symmetric_point_distances,
)

__all__ = [
    "CLASSIFIER_REGIONS",
    "LABEL_THRESHOLDS",
    "CheckpointError",
    "Lamb",
    "PoseRegion",
    "alignment_loss",
    "classifier_labels",
    "classifier_loss",
    "export_model",
    "load_checkpoint",
    "load_model_file",
    "sample_classifier_poses",
    "sample_update_poses",
    "symmetric_point_distances",
]
