"""Loading a `model.pt` (written by `multisparc.training.checkpoint.export_model`) for inference, and the
network shipped inside the package."""

from __future__ import annotations

from pathlib import Path

import torch

from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig, MultiSparcNet
from multisparc.training.checkpoint import CheckpointError, load_model_file

#: The network trained with the `cpu` configuration, installed with the package (package data).
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "cpu.pt"


def shipped_checkpoint() -> Path:
    """Path of the package's own trained network (`multisparc/checkpoints/cpu.pt`).

    Raises FileNotFoundError naming the path when this installation has none.
    """
    if not SHIPPED_CHECKPOINT.is_file():
        raise FileNotFoundError(
            f"{SHIPPED_CHECKPOINT}: the shipped network is missing from this installation; "
            "pass a model.pt of `multisparc train` with --checkpoint"
        )
    return SHIPPED_CHECKPOINT


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[MultiSparcNet, InputConfig]:
    """The network of a `model.pt` (on `device`, eval mode) and the token sizes it was trained with.

    Raises FileNotFoundError or CheckpointError (a ValueError) naming the file: not a model file, a
    config the library does not know, weights that do not fit the config.
    """
    data = load_model_file(Path(path), map_location=device)
    try:
        model_config = ModelConfig.from_dict(data["model_config"])
        input_config = InputConfig.from_dict(data["input_config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: unusable configuration ({error})") from error
    model = MultiSparcNet(model_config)
    try:
        model.load_state_dict(data["state_dict"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{path}: weights do not fit its model_config ({error})") from error
    return model.to(device).eval(), input_config
