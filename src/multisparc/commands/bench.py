"""Benchmarks; each writes its section of BENCHMARKS.md (--markdown) with the command and machine.

multisparc bench data [--scenes N] [--markdown BENCHMARKS.md]
    synthetic training examples per second (4 objects, paper inputs: 2000 box pixels + 500 CAD
    points each), sparse rendering against full frames, 1 and 2 worker processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="benchmark", required=True)
    data = sub.add_parser("data", help="synthetic training examples per second")
    data.add_argument("--scenes", type=int, default=400, help="scenes per sparse measurement")
    data.add_argument("--full-scenes", type=int, default=40, help="scenes per full-frame measurement")
    data.add_argument("--objects", type=int, default=4)
    data.add_argument("--noise", default="realistic", choices=("clean", "mild", "realistic"))
    data.add_argument("--cads", type=Path, default=None, help="CAD index (default: procedural library)")
    data.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    data.add_argument("--seed", type=int, default=0)


def _data(args: argparse.Namespace) -> int:
    import tempfile

    from multisparc.benchmarks.data import DataBenchmarkCase, measure
    from multisparc.benchmarks.report import markdown_table, section, update_markdown
    from multisparc.cad.procedural import build_library
    from multisparc.inputs import InputConfig

    with tempfile.TemporaryDirectory() as tmp:
        cads_json = args.cads if args.cads is not None else build_library(Path(tmp) / "cads", seed=args.seed)
        rows, rates = [], {}
        for full_frame in (False, True):
            case = DataBenchmarkCase(
                str(cads_json), args.objects, InputConfig.paper(), args.noise, full_frame, args.seed
            )
            n = args.full_scenes if full_frame else args.scenes
            for workers in (1, 2):
                rate = measure(case, n, workers)
                rates[full_frame, workers] = rate
                name = "full frame" if full_frame else "sparse"
                rows.append([name, workers, n, f"{rate:.1f}", f"{1000.0 / rate:.2f}"])
                print(f"{name:10s} {workers} process(es): {rate:8.1f} examples/s")
    ratios = [rates[False, w] / rates[True, w] for w in (1, 2)]
    body = (
        f"Training examples per second: scenes of {args.objects} objects, {args.noise} perception noise, "
        "paper inputs (2000 box pixels + 500 CAD points per object), procedural CAD library.\n\n"
        + markdown_table(["rendering", "processes", "scenes", "examples/s", "ms/example"], rows)
        + f"\n\nSparse over full-frame speed-up: {ratios[0]:.1f}x (1 process), {ratios[1]:.1f}x (2 processes).\n"
    )
    if args.markdown is not None:
        update_markdown(args.markdown, "data", section("data", "Synthetic training data throughput", body))
        print(f"wrote the results into {args.markdown}")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"data": _data}[args.benchmark](args)
