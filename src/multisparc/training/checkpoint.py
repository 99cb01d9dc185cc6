"""Training checkpoints (everything needed to resume exactly) and the small shippable `model.pt`.

Both are written atomically: to a temporary file in the destination folder, then `os.replace`d over
the destination, so an interrupted write (killed job, full disk) leaves the previous file intact.

Both are read with `torch.load(weights_only=True)`: tensors, plain Python values and, for the numpy random
state of a checkpoint, plain numpy arrays; nothing else is unpickled, so a shared or tampered file cannot
run code when it is loaded. A file that needs more is refused with an error that says so.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Marks a `model.pt` written by `export_model`.
MODEL_FORMAT = "multisparc-model"
MODEL_FORMAT_VERSION = 1


# What `np.random.get_state()` pickles into (a uint32 array, its dtype), under the module names of numpy 2
# and numpy 1: constructors of plain arrays, which run no other code.
_reconstruct = np.zeros(1).__reduce__()[0]
_NUMPY_STATE_GLOBALS = [
    (_reconstruct, "numpy._core.multiarray._reconstruct"),
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]
# The part of torch's refusal that names the object a file asked for.
_REFUSED_OBJECT = re.compile(r"GLOBAL \S+|got <[^>]+>")


class CheckpointError(ValueError):
    """A checkpoint or model file that cannot be used; the message names the file."""


def atomic_save(obj: Any, path: Path) -> None:
    """`torch.save(obj)` to path so that path holds either the old or the complete new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            torch.save(obj, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _load(path: Path, map_location) -> dict:
    """The dict of a torch file, loaded so that it cannot run code (module docstring)."""
    path = Path(path)
    if path.is_dir():
        hint = f"; give {path / 'model.pt'}" if (path / "model.pt").is_file() else ""
        raise CheckpointError(f"{path}: is a folder, not a model file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals(_NUMPY_STATE_GLOBALS):
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        asked = _REFUSED_OBJECT.search(str(error))
        raise CheckpointError(
            f"{path}: refused: it holds Python objects besides tensors and plain values"
            f"{f' ({asked.group(0)})' if asked else ''}, and loading it could run code; multisparc does not "
            "write such files: it may be tampered with"
        ) from None
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable torch file ({error})") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(data).__name__}")
    return data


def rng_states() -> dict[str, Any]:
    """The global random states of python, numpy and torch (CPU, and CUDA when present)."""
    # The legacy global numpy state: what third-party code draws from when given no generator.
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of `rng_states`."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])  # noqa: NPY002
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: dict,
    extra: dict | None = None,
) -> None:
    """Atomically write model and optimizer state, the step count, the config dict, the RNG states and
    `extra` (any other picklable run state, e.g. the training time so far)."""
    state = {
        "step": step,
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_states(),
        "extra": extra or {},
    }
    atomic_save(state, path)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """A dict written by `save_checkpoint` (keys step, config, model, optimizer, rng, extra)."""
    data = _load(path, map_location)
    missing = {"step", "config", "model", "optimizer", "rng"} - data.keys()
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint, missing {', '.join(sorted(missing))}")
    return data


def export_model(path: Path, model: torch.nn.Module, model_config: dict, input_config: dict) -> None:
    """Atomically write the shippable model: its config, the token config it was trained with, weights."""
    state = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "model_config": model_config,
        "input_config": input_config,
        "state_dict": model.state_dict(),
    }
    atomic_save(state, path)


def load_model_file(path: Path, map_location="cpu") -> dict:
    """The dict of a `model.pt` (keys model_config, input_config, state_dict), checked for its format."""
    return _checked_model(_load(path, map_location), path)


def _checked_model(data: dict, path: Path) -> dict:
    """`data`, the dict loaded from the model file `path`, after the checks of `load_model_file`."""
    if data.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path}: not a multisparc model file (format {data.get('format')!r})")
    if data.get("version") != MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: model file version {data.get('version')}, expected {MODEL_FORMAT_VERSION}"
        )
    weights = data.get("state_dict")
    if isinstance(weights, dict):
        broken = [
            name for name, value in weights.items()
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
        ]
        if broken:
            raise CheckpointError(
                f"{path}: weights hold NaN or infinite values ({', '.join(broken[:3])}"
                f"{', ...' if len(broken) > 3 else ''}): the training run that wrote it diverged"
            )
    return data


def load_network_weights(path: Path) -> tuple[dict, dict]:
    """(model_config dict, state_dict) of a `model.pt` or of a run's `checkpoint.pt`, so that a new run
    may start from any checkpoint a run has kept, not only from its exported model."""
    data = _load(path, "cpu")
    if data.get("format") == MODEL_FORMAT:
        data = _checked_model(data, path)
        return data["model_config"], data["state_dict"]
    if {"step", "config", "model"} <= data.keys() and isinstance(data["config"], dict) and "model" in data["config"]:
        return data["config"]["model"], data["model"]
    raise CheckpointError(f"{path}: neither a multisparc model file nor a training checkpoint")
