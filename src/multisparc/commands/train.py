"""Train Multi-SPARC-Net on synthetic scenes rendered on the fly.

multisparc train --config cpu --out runs/cpu                   train the CPU preset (about 2 hours)
multisparc train --config runs/cpu/config.yaml --out runs/cpu --resume    continue a stopped run
multisparc train --config paper --out runs/paper --device cuda
multisparc train --config my.yaml --out runs/finetune --init-from runs/cpu/model.pt   fine-tune
torchrun --nproc_per_node=4 -m multisparc.cli train --config paper --out runs/paper    several GPUs

--config takes a preset (paper, cpu, tiny) or a YAML file. The out folder receives config.yaml,
checkpoint.pt (resumable), model.pt (for `multisparc align`), metrics.jsonl and TensorBoard logs
(`tensorboard --logdir OUT/tensorboard`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", required=True, help="preset name (paper, cpu, tiny) or YAML file")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument(
        "--init-from",
        type=Path,
        metavar="MODEL",
        help="start a new run from the weights of this model.pt (or of a run's checkpoint.pt)",
    )
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (batches)")
    parser.add_argument("--time-budget", type=float, metavar="S", help="stop after S seconds of this run")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the network trains")
    parser.add_argument("--num-workers", type=int, help="data-loader processes rendering training images")


def run(args: argparse.Namespace) -> int:
    from multisparc.training.config import load_config
    from multisparc.training.trainer import train

    config = load_config(args.config)
    overrides = {
        "max_steps": args.max_steps,
        "time_budget_s": args.time_budget,
        "device": args.device,
        "num_workers": args.num_workers,
    }
    config = config.replace(**{key: value for key, value in overrides.items() if value is not None})
    if args.resume and args.init_from is not None:
        raise ValueError("--resume continues a run from its own checkpoint; --init-from starts a new one")
    result = train(config, args.out, resume=args.resume, init_from=args.init_from)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    summary = ", ".join(f"{key} {value:.3f}" for key, value in result.items() if key.startswith("val/"))
    print(f"stopped at step {result['step']} after {result['elapsed_s']:.0f} s of training; {summary}")
    return 0
