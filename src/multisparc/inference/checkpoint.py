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


def check_device(device: torch.device | str) -> torch.device:
    """`device` as a torch.device that exists on this machine; ValueError naming it otherwise (before any
    file is read, so that a missing GPU is not blamed on the model file)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {device!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "" if torch.version.cuda else f" (torch {torch.__version__} is a CPU-only build)"
            raise ValueError(f"device {device!r}: torch finds no CUDA GPU on this machine{build}; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA GPU(s), numbered from 0")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: Apple's MPS is not available on this machine; use --device cpu")
    return parsed


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[MultiSparcNet, InputConfig]:
    """The network of a `model.pt` (on `device`, eval mode) and the token sizes it was trained with.

    Raises ValueError for a device this machine lacks, FileNotFoundError or CheckpointError (a ValueError)
    naming the file: a folder, not a model file, a file that could run code, weights with NaN, a config the
    library does not know, weights that do not fit the config.
    """
    device = check_device(device)
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
