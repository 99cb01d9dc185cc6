"""The training loop of Multi-SPARC-Net (paper Sec. 3.3 "Iterative Refinements", Sec. 3.4, Supp. B).

One step takes a new batch of images and runs `refinement_steps` (3) passes over it. Each pass builds
the tokens of every detection under its current pose, predicts updates and logits, takes the losses
(`multisparc.training.losses`) and makes one LAMB step; the detached predictions become the next
pass's poses, so the network learns from the poses it produces itself. Region classifier examples
take a fresh draw from the classifier regions at every pass instead of their prediction (more distinct
classifier poses per rendered image; their updates carry no loss anyway); hypothesis classifier
examples (`TrainConfig.refined_classifier_ratio`) follow their predictions like update examples.
With `TrainConfig.scoring_pass` one more pass follows, with its own optimizer step: the classifier loss
alone, on the refined poses of the update and hypothesis examples. Those are the poses the test-time
scoring pass meets (the refined start near the truth and the refined turned ones); the classifier
regions only approximate them. With `TrainConfig.flip_ranking` that pass also scores every refined pose
turned by 180 deg about its up axis and ranks each such pair (`flip_ranking_loss`): the test-time choice
among hypotheses fails most often on such flips.

Validation reports, besides the refinement of update-style starts and the classifier on region draws,
what the pipeline does at test time: every detection's 4 hypotheses 90 deg apart, refined, scored, the
highest score chosen (`val/select_acc`, against `val/oracle_acc` when the best hypothesis is taken).

Runs on one CPU, one GPU or, under `torchrun`, on several processes with DistributedDataParallel
(gloo on CPU, NCCL on GPU): every rank renders its own share of each batch (rank-dependent seeds), rank
0 alone validates, logs and writes files. Out folder:

    config.yaml        the run's configuration
    checkpoint.pt      model, optimizer, step, config and RNG states (written atomically; `resume`)
    model.pt           model config, token config and weights only (for `multisparc align`)
    metrics.jsonl      one JSON record per validation (step, time, accuracies, losses)
    tensorboard/       TensorBoard logs: losses, classifier and alignment accuracy, throughput
    cads/              the procedural CAD library, when `cads: procedural`
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from multisparc.cad import CadIndex
from multisparc.cad.procedural import build_library
from multisparc.datasets.pixels import PixelSource
from multisparc.geometry import Pose, apply_update, is_aligned, symmetry_rotations
from multisparc.inputs import chunk_indices, collate, step_tokens, uncollate
from multisparc.model import ModelConfig, MultiSparcNet, with_compare_pairs
from multisparc.render import RayCaster
from multisparc.training.checkpoint import (
    export_model,
    load_checkpoint,
    load_network_weights,
    restore_rng_states,
    save_checkpoint,
)
from multisparc.training.config import TrainConfig, save_config
from multisparc.training.data import (
    ImageBuilder,
    TrainingImage,
    TrainingStream,
    process_resources,
    select_poses,
    training_loader,
    validation_images,
)
from multisparc.training.examples import turn_about_up
from multisparc.training.lamb import Lamb
from multisparc.training.losses import (
    LABEL_THRESHOLDS,
    alignment_loss,
    classifier_labels,
    classifier_loss,
    ranking_loss,
    symmetric_point_distances,
)

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
METRICS_NAME = "metrics.jsonl"


# Processes and devices ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: rank of world_size (1 without torchrun) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; "cuda" without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but torch sees no CUDA GPU (use --device cpu)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def start_processes(device_name: str) -> Processes:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size == 1:
        return Processes(0, 1, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        # Processes on one machine share its cores; more threads than cores only adds contention.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // local_world))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), world_size, device)


def _barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()


def _agree(flag: bool, processes: Processes) -> bool:
    """Rank 0's flag, on every rank."""
    if not processes.distributed:
        return flag
    tensor = torch.tensor([int(flag)], device=processes.device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


# One batch of objects -----------------------------------------------------------------------------


@dataclass
class ObjectTargets:
    """Per-object targets of a batch of images, flattened in image order (n objects, on the device).

    gt: poses (n,); loss_points (n, n_loss, 3) CAD frame; sym_rotations (n, 36, 3, 3); sym: n tags;
    has_gt, update_mask, classifier_mask, region_mask (n,) bool (update_mask = true detections that
    are not classifier examples; region_mask = classifier examples drawn from the regions, the others
    follow their refinements).
    """

    gt: Pose
    loss_points: Tensor
    sym_rotations: Tensor
    sym: list[str]
    has_gt: Tensor
    update_mask: Tensor
    classifier_mask: Tensor
    region_mask: Tensor

    @classmethod
    def of(cls, images: Sequence[TrainingImage], device: torch.device) -> ObjectTargets:
        sym = [tag for image in images for tag in image.sym]
        has_gt = torch.cat([image.has_gt for image in images]).to(device)
        classifier = torch.cat([image.is_classifier for image in images]).to(device)
        follows = torch.cat([image.follows_refinement for image in images]).to(device)
        return cls(
            gt=Pose.cat([image.gt for image in images]).to(device),
            loss_points=torch.cat([image.loss_points for image in images]).to(device),
            sym_rotations=symmetry_rotations(sym, device=device),
            sym=sym,
            has_gt=has_gt,
            update_mask=has_gt & ~classifier,
            classifier_mask=classifier,
            region_mask=classifier & ~follows,
        )


def _as_slice(indices: range) -> slice:
    return slice(indices.start, indices.stop)


def predict(
    model: torch.nn.Module,
    images: Sequence[TrainingImage],
    sources: Sequence[PixelSource],
    poses: Pose,
    n_mul: int,
    device: torch.device,
    amp: bool = False,
) -> tuple[Tensor, Tensor]:
    """One forward pass over all objects of `images` under poses (n,) (flat, image order).

    Tokens are made on the CPU from the detached poses; each image's detections share items of n_mul
    slots (chunked when there are more). With `amp` the network runs under bfloat16 autocast. Returns
    update (n, 10) and logit (n,) float32 on `device`.
    """
    cpu_poses = poses.detach().to("cpu")
    rows, start = [], 0
    for image, source in zip(images, sources, strict=True):
        count = image.n_detections
        image_poses = cpu_poses[start : start + count]
        tokens, mask = step_tokens(image.box_tokens, source, image.cad_points, image.cad_normals, image_poses)
        rotations = image_poses.R.float()
        rows += [
            (tokens[chunk], mask[chunk], rotations[chunk]) for chunk in map(_as_slice, chunk_indices(count, n_mul))
        ]
        start += count
    batch = collate(rows, n_mul).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        output = model(batch.tokens, batch.object_mask, batch.token_mask, batch.rotations)
    update, logit = output.update.float(), output.logit.float()
    return uncollate(update, batch.object_mask), uncollate(logit, batch.object_mask)


class Meter:
    """Sums and counts of scalar metrics; `means()` gives each sum over its count."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)

    def add(self, name: str, values: Tensor, mask: Tensor | None = None) -> None:
        """Add values (...) (float or bool), optionally only where mask (...) is True."""
        values = values.detach().float()
        if mask is not None:
            values = values[mask]
        self.sums[name] += float(values.sum())
        self.counts[name] += values.numel()

    def merge(self, other: Meter) -> None:
        """Add the sums and counts of `other`."""
        for name, count in other.counts.items():
            self.sums[name] += other.sums[name]
            self.counts[name] += count

    def means(self) -> dict[str, float]:
        return {name: self.sums[name] / count for name, count in self.counts.items() if count > 0}


def train_batch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Sequence[TrainingImage],
    sources: Sequence[PixelSource],
    config: TrainConfig,
    device: torch.device,
) -> Meter:
    """The refinement passes of one batch, one optimizer step each (module docstring); returns its metrics."""
    meter = Meter()
    targets = ObjectTargets.of(images, device)
    refined = Pose.cat([image.update_poses for image in images]).to(device)
    classifier_poses = Pose.cat([image.classifier_poses for image in images], dim=1).to(device)
    hypotheses = targets.classifier_mask & ~targets.region_mask
    for refinement in range(config.refinement_steps):
        poses = select_poses(targets.region_mask, classifier_poses[refinement], refined)
        update, logit = predict(model, images, sources, poses, config.model.n_mul, device, config.amp)
        predicted = apply_update(poses, update)
        align = alignment_loss(
            predicted,
            targets.gt,
            targets.loss_points,
            targets.sym_rotations,
            targets.update_mask,
            config.loss,
            config.rotation_weight,
        )
        labels = classifier_labels(poses, targets.gt, targets.sym)
        classify = classifier_loss(logit, labels, targets.classifier_mask)
        optimizer.zero_grad(set_to_none=True)
        (align + classify).backward()
        optimizer.step()
        refined = predicted.detach()

        meter.add("loss/align", align.reshape(1), targets.update_mask.any().reshape(1))
        meter.add("loss/classifier", classify.reshape(1), targets.classifier_mask.any().reshape(1))
        meter.add("acc/classifier", (logit > 0) == labels.bool(), targets.classifier_mask)
        meter.add("classifier/positive_rate", labels, targets.classifier_mask)
        if hypotheses.any():
            meter.add("acc/classifier_hypotheses", (logit > 0) == labels.bool(), hypotheses)
        if refinement == 0:
            meter.add("acc/align_initial", labels.bool(), targets.update_mask)
    aligned = is_aligned(refined, targets.gt, targets.sym, LABEL_THRESHOLDS, scale_mode="per_axis")
    meter.add("acc/align_refined", aligned, targets.update_mask)
    if config.scoring_pass:
        scored = targets.has_gt & ~targets.region_mask
        _, logit = predict(model, images, sources, refined, config.model.n_mul, device, config.amp)
        labels = aligned.to(logit.dtype)
        classify = classifier_loss(logit, labels, scored)
        if config.flip_ranking > 0:
            classify = classify + flip_ranking_loss(
                model, images, sources, refined, logit, aligned, scored, targets, config, device, meter
            )
        optimizer.zero_grad(set_to_none=True)
        classify.backward()
        optimizer.step()
        meter.add("loss/classifier_scoring", classify.reshape(1), scored.any().reshape(1))
        meter.add("acc/classifier_scoring", (logit > 0) == aligned, scored)
    return meter


def flip_ranking_loss(
    model: torch.nn.Module,
    images: Sequence[TrainingImage],
    sources: Sequence[PixelSource],
    refined: Pose,
    logit: Tensor,
    aligned: Tensor,
    scored: Tensor,
    targets: ObjectTargets,
    config: TrainConfig,
    device: torch.device,
    meter: Meter,
) -> Tensor:
    """The scoring pass's flip terms (`TrainConfig.flip_ranking`): the classifier loss of the refined poses
    (n,) turned by 180 deg about their up axis, plus flip_ranking times a logistic ranking loss
    `softplus(-(logit_aligned - logit_other))` over the objects where exactly one of the pair is aligned."""
    flipped = turn_about_up(refined, torch.full((refined.shape[0],), math.pi, dtype=refined.R.dtype))
    _, flipped_logit = predict(model, images, sources, flipped, config.model.n_mul, device, config.amp)
    flipped_aligned = is_aligned(flipped, targets.gt, targets.sym, LABEL_THRESHOLDS, scale_mode="per_axis")
    pairs = scored & (aligned != flipped_aligned)
    margin = torch.where(aligned, logit - flipped_logit, flipped_logit - logit)
    ranking = ranking_loss(margin, pairs)
    meter.add("loss/flip_ranking", ranking.reshape(1), pairs.any().reshape(1))
    meter.add("acc/flip_ranking", margin > 0, pairs)
    return classifier_loss(flipped_logit, flipped_aligned.to(logit.dtype), scored) + config.flip_ranking * ranking


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    images: Sequence[TrainingImage],
    caster: RayCaster,
    config: TrainConfig,
    device: torch.device,
) -> dict[str, float]:
    """Metrics on the fixed validation set, in eval mode.

    Refinement: every true detection starts from its update-style initial pose and is refined
    `refinement_steps` times; alignment accuracy (20 cm / 20 deg / 20 %) and point loss before and after.
    Scoring: one more pass over the refined poses; cls_acc_refined = classifier accuracy there.
    Classifier: one pass over the first draw of classifier poses for every true detection (about half
    of them correct); cls_acc = classifier accuracy there.
    """
    was_training = model.training
    model.eval()
    meter = Meter()
    n_mul = config.model.n_mul
    for start in range(0, len(images), config.batch_size):
        chunk = images[start : start + config.batch_size]
        sources = [image.pixel_source(caster) for image in chunk]
        targets = ObjectTargets.of(chunk, device)
        mask = targets.has_gt
        initial = Pose.cat([image.update_poses for image in chunk]).to(device)
        poses = initial
        for _ in range(config.refinement_steps):
            update, _ = predict(model, chunk, sources, poses, n_mul, device, config.amp)
            poses = apply_update(poses, update)
        for name, pose in (("initial", initial), ("refined", poses)):
            distances = symmetric_point_distances(pose, targets.gt, targets.loss_points, targets.sym_rotations)
            meter.add(f"val/align_loss_{name}", distances, mask)
            meter.add(f"val/align_acc_{name}", classifier_labels(pose, targets.gt, targets.sym), mask)
        _, logit = predict(model, chunk, sources, poses, n_mul, device, config.amp)
        labels = classifier_labels(poses, targets.gt, targets.sym)
        meter.add("val/cls_acc_refined", (logit > 0) == labels.bool(), mask)
        classifier_poses = Pose.cat([image.classifier_poses[0] for image in chunk]).to(device)
        _, logit = predict(model, chunk, sources, classifier_poses, n_mul, device, config.amp)
        labels = classifier_labels(classifier_poses, targets.gt, targets.sym)
        meter.add("val/cls_acc", (logit > 0) == labels.bool(), mask)
        meter.add("val/cls_positive_rate", labels, mask)
        _validate_selection(model, chunk, sources, targets, initial, config, device, meter)
    model.train(was_training)
    return meter.means()


def hypothesis_starts(initial: Pose, n_hypotheses: int = 4) -> list[Pose]:
    """The test-time hypotheses of update-style starts initial (n,): n_hypotheses poses (n,), hypothesis
    h turning object k by (h + k) * 360 / n_hypotheses deg about its up axis, so that every forward-pass
    item mixes starts near the truth with turned ones, as the pipeline's hypotheses do."""
    objects = torch.arange(initial.shape[0])
    step = 2.0 * math.pi / n_hypotheses
    return [turn_about_up(initial, ((h + objects) % n_hypotheses) * step) for h in range(n_hypotheses)]


def _validate_selection(
    model: torch.nn.Module,
    images: Sequence[TrainingImage],
    sources: Sequence[PixelSource],
    targets: ObjectTargets,
    initial: Pose,
    config: TrainConfig,
    device: torch.device,
    meter: Meter,
) -> None:
    """The test-time protocol on one validation chunk (module docstring): select_acc, oracle_acc and
    cls_acc_hypotheses (the classifier over all refined hypotheses)."""
    finals, logits = [], []
    for poses in hypothesis_starts(initial):
        for _ in range(config.refinement_steps):
            update, _ = predict(model, images, sources, poses, config.model.n_mul, device, config.amp)
            poses = apply_update(poses, update)
        finals.append(poses)
        logits.append(predict(model, images, sources, poses, config.model.n_mul, device, config.amp)[1])
    logit = torch.stack(logits)  # (H, n)
    aligned = torch.stack([classifier_labels(pose, targets.gt, targets.sym).bool() for pose in finals])
    chosen = logit.argmax(dim=0)
    mask = targets.has_gt
    meter.add("val/select_acc", aligned.gather(0, chosen[None])[0], mask)
    meter.add("val/oracle_acc", aligned.any(dim=0), mask)
    meter.add("val/cls_acc_hypotheses", (logit > 0) == aligned, mask.expand_as(aligned))


# The run ------------------------------------------------------------------------------------------


def prepare_cads(config: TrainConfig, out_dir: Path, processes: Processes) -> Path:
    """The cads.json to train on (made once, in out_dir/cads): the given index or the procedural library,
    joined by the training half of the SweetHome3D catalogue when `config.sweethome3d` names it."""
    if config.cads != "procedural":
        base = Path(config.cads)
        if not base.is_file():
            raise FileNotFoundError(f"{base}: no such CAD index (the training config's `cads`)")
        if config.sweethome3d is None:
            return base.resolve()
    else:
        base = out_dir / "cads" / "cads.json"
        if processes.is_main and not base.is_file():
            log.info("building the procedural CAD library in %s", base.parent)
            build_library(
                base.parent, per_class=config.procedural_per_class, seed=config.seed, style=config.procedural_style
            )
        if config.sweethome3d is None:
            _barrier(processes)
            return base.resolve()
    path = out_dir / "cads" / "training_cads.json"
    if processes.is_main and not path.is_file():
        sweethome3d = CadIndex.from_sweethome3d(config.sweethome3d, half="train")
        joined = CadIndex([*CadIndex.load(base).values(), *sweethome3d.values()], source=path)
        log.info("training library: %d models (%d SweetHome3D)", len(joined), len(sweethome3d))
        joined.save(path)
    _barrier(processes)
    return path.resolve()


def _builder_args(config: TrainConfig, cads_json: Path, classifier_ratio: float) -> dict:
    return {
        "cads_json": str(cads_json),
        "scenes": config.scenes,
        "noise": config.noise,
        "inputs": config.inputs,
        "n_loss": config.n_loss,
        "refinement_steps": config.refinement_steps,
        "classifier_ratio": classifier_ratio,
        "near_init_ratio": config.near_init_ratio,
        "refined_classifier_ratio": config.refined_classifier_ratio,
    }


class RunFiles:
    """Rank 0's outputs: TensorBoard, metrics.jsonl, checkpoint and model export (module docstring)."""

    def __init__(self, out_dir: Path, config: TrainConfig) -> None:
        self.out_dir = out_dir
        self.config = config
        save_config(config, out_dir / "config.yaml")
        try:
            from torch.utils.tensorboard import SummaryWriter  # slow import, rank 0 only
        except ImportError:  # the optional `train` extra; metrics.jsonl holds every validation anyway
            log.info("tensorboard is not installed (pip install 'multisparc[train]'): no TensorBoard logs")
            self.writer = None
        else:
            self.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def append_metrics(self, record: dict) -> None:
        with open(self.out_dir / METRICS_NAME, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")

    def save(self, model: MultiSparcNet, optimizer: torch.optim.Optimizer, step: int, elapsed_s: float) -> None:
        save_checkpoint(
            self.out_dir / CHECKPOINT_NAME,
            model,
            optimizer,
            step,
            self.config.to_dict(),
            {"elapsed_s": elapsed_s},
        )
        export_model(self.out_dir / MODEL_NAME, model, self.config.model.to_dict(), self.config.inputs.to_dict())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _load_resume_state(config: TrainConfig, out_dir: Path, resume: bool) -> dict | None:
    """The checkpoint to continue from, None for a fresh run; refuses to overwrite a run silently."""
    path = out_dir / CHECKPOINT_NAME
    if not path.is_file():
        if resume:
            log.info("no checkpoint in %s: starting a fresh run", out_dir)
        return None
    if not resume:
        raise ValueError(f"{path} exists: pass --resume to continue that run, or choose another --out")
    state = load_checkpoint(path)
    saved = TrainConfig.from_dict(state["config"], source=str(path))
    changed = saved.learned_differences(config)
    if changed:
        raise ValueError(
            f"{path}: the run was trained with other settings of {', '.join(changed)}; resume with its "
            f"config ({out_dir / 'config.yaml'}), changing at most run-control fields"
        )
    return state


def train(config: TrainConfig, out_dir: Path, resume: bool = False, init_from: Path | None = None) -> dict[str, float]:
    """Train (or, with resume, continue) a run in out_dir until max_steps or time_budget_s.

    init_from: a `model.pt` whose weights a new run starts from (fine-tuning, e.g. a synthetic
    pre-training continued with other data or examples); its network config must equal config.model.

    Works alone or under `torchrun` (module docstring). Returns, on every rank, the step reached, the
    training seconds so far and rank 0's last validation metrics (empty on other ranks). With
    num_workers > 0 the data-loader workers are spawned, so a script calling this needs the usual
    `if __name__ == "__main__":` guard.
    """
    processes = start_processes(config.device)
    try:
        return _train(config, Path(out_dir), resume, processes, init_from)
    finally:
        if processes.distributed:
            dist.destroy_process_group()


def _initial_weights(config: TrainConfig, path: Path) -> dict[str, Tensor]:
    """The state dict of the model file or run checkpoint at `path`, checked to fit config.model. A network
    without compared pairs may start one with them (`with_compare_pairs`): the rest of it is the same network."""
    model_config, weights = load_network_weights(path)
    saved = ModelConfig.from_dict(model_config)
    if saved == config.model:
        return weights
    if saved.compare_pairs == 0 and replace(saved, compare_pairs=config.model.compare_pairs) == config.model:
        log.info("%s: adding the compared-pair features (zero weights) to its embedding", path)
        return with_compare_pairs(weights, config.model.compare_pairs)
    raise ValueError(f"{path}: its network differs from the config's model section; cannot start from it")


def _train(
    config: TrainConfig, out_dir: Path, resume: bool, processes: Processes, init_from: Path | None = None
) -> dict[str, float]:
    if config.batch_size % processes.world_size:
        raise ValueError(f"batch_size {config.batch_size} does not split over {processes.world_size} processes evenly")
    out_dir.mkdir(parents=True, exist_ok=True)
    state = _load_resume_state(config, out_dir, resume)
    cads_json = prepare_cads(config, out_dir, processes)
    run = TrainingRun(config, out_dir, processes, cads_json)
    if state is not None:
        run.restore(state)
    elif init_from is not None:
        run.model.load_state_dict(_initial_weights(config, Path(init_from)))
        log.info("starting from the weights of %s", init_from)
    return run.run()


class TrainingRun:
    """One training process's state (module docstring): the network and optimizer, the step and the time
    trained before this run, the fixed validation set (rank 0), its output files (rank 0), and the meters
    of the current logging and validation windows. `run()` trains until the stopping rule holds."""

    def __init__(self, config: TrainConfig, out_dir: Path, processes: Processes, cads_json: Path) -> None:
        self.config, self.out_dir, self.processes = config, out_dir, processes
        self.device = processes.device
        torch.manual_seed(config.seed)
        self.model = MultiSparcNet(config.model).to(self.device)
        self.optimizer = Lamb(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.step, self.elapsed_before = 0, 0.0
        self.cads_json = cads_json
        self.caster = process_resources(str(cads_json))[1]
        self.files = RunFiles(out_dir, config) if processes.is_main else None
        self.val_set: list[TrainingImage] = []
        if processes.is_main and config.val_scenes:
            # Validation refines every detection from its update start: none starts turned as a hypothesis
            # example, so the set (and its figures) stays that of a run without them.
            builder = ImageBuilder(
                **{**_builder_args(config, cads_json, config.classifier_ratio), "refined_classifier_ratio": 0.0}
            )
            self.val_set = validation_images(builder, config.seed, config.val_scenes)
        self.run_start = time.monotonic()
        # Training metrics since the last log (TensorBoard) and since the last validation (metrics.jsonl),
        # with the time spent waiting for the data loader (scenes, box tokens, examples) since the latter.
        self.log_meter, self.val_meter = Meter(), Meter()
        self.log_window, self.val_window = _Window(self.run_start, 0), _Window(self.run_start, 0)
        self.validation: dict[str, float] = {}
        self.saved_step = self.validated_step = 0

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint's state: weights, optimizer, RNG states, step and time trained."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_states(state["rng"])
        self.step, self.elapsed_before = int(state["step"]), float(state["extra"].get("elapsed_s", 0.0))
        self.saved_step = self.validated_step = self.step
        log.info("resuming %s at step %d", self.out_dir, self.step)

    def elapsed(self) -> float:
        """Seconds of training so far, earlier runs of this folder included."""
        return self.elapsed_before + time.monotonic() - self.run_start

    def finished(self) -> bool:
        """Whether max_steps or the time budget is reached (agreed between processes)."""
        config = self.config
        steps_done = config.max_steps is not None and self.step >= config.max_steps
        budget_spent = config.time_budget_s is not None and time.monotonic() - self.run_start >= config.time_budget_s
        return _agree(steps_done or budget_spent, self.processes)

    def run_validation(self) -> None:
        """Validate, append the record (with the training window's means and timings) and start a new window."""
        metrics = validate(self.model, self.val_set, self.caster, self.config, self.device)
        record = {"step": self.step, "elapsed_s": round(self.elapsed(), 2), "time": time.time(), **metrics}
        record |= {f"train/{name}": value for name, value in self.val_meter.means().items()}
        record["train/lr"] = self.optimizer.param_groups[0]["lr"]  # that of the last step
        record |= self.val_window.shares()
        self.files.append_metrics(record)
        self.files.log_scalars(metrics, self.step)
        log.info("step %d: %s", self.step, ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        self.validation, self.validated_step = metrics, self.step
        self.val_meter, self.val_window = Meter(), _Window(time.monotonic(), 0)

    def save(self) -> None:
        self.files.save(self.model, self.optimizer, self.step, self.elapsed())
        self.saved_step = self.step

    def _after_step(self, batch_meter: Meter, progress: tqdm) -> None:
        """Count the step, then log, validate and checkpoint on their schedules (rank 0)."""
        config = self.config
        self.log_meter.merge(batch_meter)
        self.val_meter.merge(batch_meter)
        self.step += 1
        self.log_window.steps += 1
        self.val_window.steps += 1
        progress.update(1)
        if not self.processes.is_main:
            return
        if self.step % config.log_every == 0:
            self.files.log_scalars(_train_scalars(self.log_meter, self.log_window, config.batch_size), self.step)
            progress.set_postfix(align=f"{self.log_meter.means().get('loss/align', math.nan):.3f}")
            self.log_meter, self.log_window = Meter(), _Window(time.monotonic(), 0)
        if self.step % config.val_every == 0 and self.val_set:
            self.run_validation()
        if self.step % config.checkpoint_every == 0:
            self.save()

    def run(self) -> dict[str, float]:
        """Train until finished; then validate and save the last step (rank 0). Returns the step, the time
        trained and the last validation's metrics."""
        config, processes = self.config, self.processes
        network = DistributedDataParallel(self.model) if processes.distributed else self.model
        per_rank = config.batch_size // processes.world_size
        stream = TrainingStream(
            _builder_args(config, self.cads_json, config.classifier_ratio),
            config.seed,
            processes.rank,
            per_rank,
            self.step,
        )
        progress = tqdm(
            total=config.max_steps, initial=self.step, disable=not processes.is_main, dynamic_ncols=True, desc="train"
        )
        try:
            if not self.finished():
                waiting_since = time.monotonic()
                for batch_step, images in training_loader(stream, config.num_workers):
                    self.val_window.data_s += time.monotonic() - waiting_since
                    if batch_step != self.step:
                        raise RuntimeError(f"data stream out of order: got step {batch_step}, expected {self.step}")
                    sources = [image.pixel_source(self.caster) for image in images]
                    for group in self.optimizer.param_groups:
                        group["lr"] = learning_rate(config, self.step)
                    batch_meter = train_batch(network, self.optimizer, images, sources, config, self.device)
                    self._after_step(batch_meter, progress)
                    if self.finished():
                        break
                    waiting_since = time.monotonic()
            if processes.is_main:
                if self.val_set and self.step != self.validated_step:
                    self.run_validation()
                if self.step != self.saved_step or not (self.out_dir / MODEL_NAME).is_file():
                    self.save()
        finally:
            progress.close()
            if self.files is not None:
                self.files.close()
        _barrier(processes)
        return {"step": self.step, "elapsed_s": self.elapsed(), **self.validation}


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of the batch at `step` (0-based, counted over the whole run, resumes included):
    config.lr, or with lr_final and lr_decay_steps set, a half cosine from lr at step 0 down to lr_final at
    lr_decay_steps and lr_final after it."""
    if config.lr_decay_steps is None:
        return config.lr
    progress = min(step / config.lr_decay_steps, 1.0)
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (1.0 + math.cos(math.pi * progress))


@dataclass
class _Window:
    """Start time and step count of a window of steps (for the throughput), and the time in it spent
    waiting for the data loader."""

    start: float
    steps: int
    data_s: float = 0.0

    def shares(self) -> dict[str, float]:
        """Seconds per step and the share of them spent waiting for data, since the window started."""
        seconds = max(time.monotonic() - self.start, 1e-9)
        return {"speed/seconds_per_step": seconds / max(self.steps, 1), "speed/data_share": self.data_s / seconds}


def _train_scalars(meter: Meter, window: _Window, batch_size: int) -> dict[str, float]:
    """Training metrics and throughput since the last log."""
    seconds = max(time.monotonic() - window.start, 1e-9)
    scalars = {f"train/{name}": value for name, value in meter.means().items()}
    scalars["speed/seconds_per_step"] = seconds / max(window.steps, 1)
    scalars["speed/images_per_s"] = window.steps * batch_size / seconds
    return scalars
