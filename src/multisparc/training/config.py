"""Training configuration: one YAML file with the network, token, scene and optimisation settings.

Shipped presets (package data `multisparc/configs/<name>.yaml`): `paper` (the paper's sizes: N_bbox
2000, N_CAD 500, N_latent 80, C_latent 256, 20 images a batch), `cpu` (a small network and sparse
tokens for a 2-core CPU, two hours of training), `gpu` (the cpu preset's recipe at a size one GPU
trains in minutes, bfloat16, 14 data workers) and `tiny` (well under a second per step, for tests).
Any other YAML file with the same layout works; missing keys take the defaults below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from multisparc.cad.procedural import PROCEDURAL_STYLES
from multisparc.config_checks import (
    require_bools,
    require_choice,
    require_fractions,
    require_ints,
    require_non_negative,
    require_positive,
)
from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig
from multisparc.scenes import NOISE_LEVELS, SceneConfig
from multisparc.training.losses import POINT_LOSSES

PRESETS: tuple[str, ...] = ("paper", "cpu", "gpu", "tiny")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Fields that only steer a run (how long, how often, where), not what is learned: a resumed run may
#: change them; changing any other field of a checkpointed run is an error.
RUN_CONTROL_FIELDS: frozenset[str] = frozenset(
    {"num_workers", "val_every", "checkpoint_every", "log_every", "max_steps", "time_budget_s", "device", "amp"}
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs.

    model, inputs, scenes: `ModelConfig`, `InputConfig`, `SceneConfig` (their own docstrings).
    noise: perception noise level of the synthetic observations ("clean", "mild", "realistic",
        "predicted"), or a mixture `{level: weight}`: each image draws its level with these weights.
    cads: "procedural" (the embedded procedural library, `procedural_per_class` models a class of
        `procedural_style` "classic" or "wide" (`cad.procedural`), built into `<out>/cads`) or the path
        of a `cads.json` (relative paths are taken from the working folder).
    sweethome3d: the SweetHome3D catalogue folder (e.g. `../shared/data/cad/sweethome3d`) whose training
        half (`cad.index.SWEETHOME3D_TRAINING`) joins the library of `cads`; None: none of it.
    batch_size: images per optimisation step over all processes (the paper: 20); with `torchrun` each
        of the world_size processes takes batch_size / world_size of them.
    lr, weight_decay: of the LAMB optimizer (paper: lr 1e-3).
    lr_final, lr_decay_steps: when both are set, the learning rate falls from lr to lr_final along a
        half cosine over the run's first lr_decay_steps steps and stays at lr_final after them (paper: a
        constant lr; `learning_rate`).
    refinement_steps: forward passes per batch, each starting from the previous (detached) prediction
        and each followed by an optimizer step (paper: 3).
    n_loss: CAD points of the alignment loss (paper: 1000). classifier_ratio: share of objects that are
        classifier examples (paper: 1 in 4). near_init_ratio: share of update examples starting where
        the test-time initialisation would (`training.examples`; paper: 0, all from z ~ U(1, 5) m).
        refined_classifier_ratio: share of the classifier examples that start as a test-time hypothesis
        and follow the network's refinements (`training.examples`; paper: 0, all from the regions).
    scoring_pass: after the refinement passes, one more pass (and optimizer step) that only scores the
        refined poses of every true detection that is not a region classifier example, as the test-time
        scoring pass does (`training.trainer`; paper: no, the score learns on classifier examples only).
    flip_ranking: weight of the flip ranking loss in the scoring pass (needs `scoring_pass`; 0: none, the
        paper has none): each refined pose is also scored turned by 180 deg about its own up axis, the turned
        pose is classified too, and where exactly one of the two is aligned a logistic ranking loss asks for
        the higher score on it. At test time most wrong choices are such flips (the right place and size,
        facing backwards), which the per-pose labels teach only indirectly.
    loss: the alignment loss, "points" (the paper's) or "disentangled" (`training.losses`).
    rotation_weight: of the disentangled loss's rotation part (1 = the plain sum; `training.losses`).
    num_workers: data-loader processes rendering training images (0 = in the training process).
    amp: run the network's forward passes under bfloat16 autocast (losses stay float32); meant for
        GPUs with bfloat16 units (A100, H100), allowed on a CPU.
    val_scenes: size of the fixed validation set; val_every, checkpoint_every, log_every: in steps.
    max_steps: stop after this many steps (batches); time_budget_s: stop after this many seconds of
        this run (None: no limit). At least one of the two must be set.
    seed: of the model initialisation, the training stream and the validation set.
    device: "auto" (CUDA when available), "cpu" or "cuda".
    """

    model: ModelConfig = field(default_factory=ModelConfig.paper)
    inputs: InputConfig = field(default_factory=InputConfig.paper)
    scenes: SceneConfig = field(default_factory=SceneConfig)
    noise: str | dict[str, float] = "realistic"
    cads: str = "procedural"
    sweethome3d: str | None = None
    procedural_per_class: int = 8
    procedural_style: str = "classic"
    batch_size: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_final: float | None = None
    lr_decay_steps: int | None = None
    refinement_steps: int = 3
    n_loss: int = 1000
    classifier_ratio: float = 0.25
    near_init_ratio: float = 0.0
    refined_classifier_ratio: float = 0.0
    scoring_pass: bool = False
    flip_ranking: float = 0.0
    loss: str = "points"
    rotation_weight: float = 1.0
    num_workers: int = 2
    amp: bool = False
    val_scenes: int = 64
    val_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    max_steps: int | None = 100_000
    time_budget_s: float | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("procedural_per_class", "batch_size", "refinement_steps", "n_loss", "val_every")
        require_ints(self, (*positive, "checkpoint_every", "log_every"), 1)
        require_ints(self, ("num_workers", "val_scenes", "seed"), 0)
        if self.model.compare_pairs not in (0, self.inputs.n_cad):
            raise ValueError(
                f"model.compare_pairs must be 0 or inputs.n_cad = {self.inputs.n_cad}, got {self.model.compare_pairs}"
            )
        noise_mixture(self.noise)
        require_choice(self, "procedural_style", PROCEDURAL_STYLES)
        require_fractions(self, ("classifier_ratio", "near_init_ratio", "refined_classifier_ratio"))
        require_bools(self, ("amp", "scoring_pass"))
        require_choice(self, "loss", sorted(POINT_LOSSES))
        require_positive(self, ("rotation_weight", "lr"))
        require_non_negative(self, ("weight_decay", "flip_ranking"))
        if self.flip_ranking > 0 and not self.scoring_pass:
            raise ValueError("flip_ranking ranks the scoring pass's poses: it needs scoring_pass: true")
        if self.rotation_weight != 1.0 and self.loss != "disentangled":
            raise ValueError(
                f"rotation_weight {self.rotation_weight} weighs a part of loss: disentangled, not {self.loss!r}"
            )
        if (self.lr_final is None) != (self.lr_decay_steps is None):
            raise ValueError("set both lr_final and lr_decay_steps (a decay needs an end and a length), or neither")
        if self.lr_final is not None:
            require_positive(self, ("lr_final",))
            require_ints(self, ("lr_decay_steps",), 1)
        if self.max_steps is None and self.time_budget_s is None:
            raise ValueError("set max_steps or time_budget_s (or both): a run needs a stopping rule")
        if self.max_steps is not None:
            require_ints(self, ("max_steps",), 0)
        if self.time_budget_s is not None:
            require_positive(self, ("time_budget_s",))
        require_choice(self, "device", DEVICES)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (the YAML layout)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["model"] = self.model.to_dict()
        data["inputs"] = self.inputs.to_dict()
        data["scenes"] = self.scenes.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training config") -> TrainConfig:
        """Inverse of `to_dict`; missing keys take the defaults. Errors name `source` and the problem."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of training settings, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {unknown}; expected some of {sorted(known)}")
        values = dict(data)
        try:
            if "model" in values:
                values["model"] = ModelConfig.from_dict(values["model"])
            if "inputs" in values:
                values["inputs"] = InputConfig.from_dict(values["inputs"])
            if "scenes" in values:
                values["scenes"] = SceneConfig.from_dict(values["scenes"], source=f"{source} (scenes)")
            return cls(**values)
        except (TypeError, ValueError) as error:
            message = str(error)
            raise ValueError(message if message.startswith(source) else f"{source}: {message}") from error

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def learned_differences(self, other: TrainConfig) -> list[str]:
        """Names of the fields, other than RUN_CONTROL_FIELDS, in which `other` differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(key for key in mine if key not in RUN_CONTROL_FIELDS and mine[key] != theirs[key])


def noise_mixture(noise: str | dict[str, float]) -> dict[str, float]:
    """The config's `noise` as {level: probability} (probabilities summing to 1), validated."""
    weights = {noise: 1.0} if isinstance(noise, str) else noise
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"noise must be a level or a non-empty mapping of levels to weights, got {noise!r}")
    for level, weight in weights.items():
        if level not in NOISE_LEVELS:
            raise ValueError(f"noise level must be one of {', '.join(NOISE_LEVELS)}, got {level!r}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"noise weight of {level!r} must be a number > 0, got {weight!r}")
    total = float(sum(weights.values()))
    return {level: weight / total for level, weight in weights.items()}


def preset_path(name: str) -> Path:
    """Path of the shipped preset YAML `name` (one of PRESETS)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)} or a YAML file")
    return Path(str(resources.files("multisparc") / "configs" / f"{name}.yaml"))


def load_config(name_or_path: str | Path) -> TrainConfig:
    """A preset by name (`paper`, `cpu`, `tiny`) or a YAML file by path."""
    path = preset_path(str(name_or_path)) if str(name_or_path) in PRESETS else Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such training config (presets: {', '.join(PRESETS)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: malformed YAML ({error})") from error
    return TrainConfig.from_dict(data if data is not None else {}, source=str(path))


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the config as YAML (the layout `load_config` reads)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
