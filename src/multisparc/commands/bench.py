"""Benchmarks; each writes its section of BENCHMARKS.md (--markdown) with the command and machine.

multisparc bench data [--scenes N] [--noise clean realistic] [--markdown BENCHMARKS.md]
    synthetic training examples per second (4 objects, paper inputs: 2000 box pixels + 500 CAD
    points each), sparse rendering against full frames, 1 and 2 worker processes, at each noise
    level, with the rays each path casts per example, and a sparse row with a tenth of the pixels
    (what remains is the work that does not shrink with the pixels).

multisparc bench speed [--objects 1 5 10] [--configs paper cpu] [--repeats R] [--device cpu|cuda]
                       [--precisions float32 bfloat16] [--threads T] [--markdown BENCHMARKS.md]
    time per image of the full test-time protocol (4 initialisations x (3 refinements + 1 scoring
    pass)), joint multi-object against sequential single-object alignment, split into token sampling,
    network and the rest, with the network's FLOP/s against the measured matmul peak. Section
    `speed` (CPU) or `speed-cuda` (GPU), so that both can stand in BENCHMARKS.md.

multisparc bench stages [--objects 5] [--pipelines paper full] [--repeats R] [--checkpoint model.pt]
                        [--cads cads.json] [--markdown BENCHMARKS.md]
    time per image of each pipeline with the shipped (or given) network on one image of n objects,
    split by stage (`multisparc.benchmarks.stage_times`).

multisparc bench starts --sets DIR... [--markdown BENCHMARKS.md]
    median initial errors (translation, rotation, scale) of the paper's start and of the observed start
    over benchmark sets (folders of scene bundles with gt.json and their cads.json, as `benchset` makes).

multisparc bench ablation --results OUT... [--markdown BENCHMARKS.md [--section NAME --title TITLE]]
    the test-time stages side by side over several `multisparc evaluate --out OUT` results (one set
    each): instance and class accuracy and time per image of every method, the full pipeline against
    the ICP baseline, and what it loses with depth x 1.05 and with boxes without masks.

multisparc bench failures --results OUT... [--method multisparc]
                          [--markdown BENCHMARKS.md [--section NAME --title TITLE]]
    where a method's poses fail on benchmark sets, from `multisparc evaluate --out OUT` folders (one set
    each): each prediction against its object's ground truth, sorted into flips, quarter turns, other
    rotations, translation and scale failures, per set, per class and per kept candidate
    (`multisparc.benchmarks.failures`).

multisparc bench model [--presets paper gpu cpu tiny] [--markdown BENCHMARKS.md]
    parameters and FLOPs per forward pass of each training preset's network.

multisparc bench choose-cad [--scenes 20] [--k 10] [--per-class 16] [--sweethome3d DIR] [--work DIR] [--rgbd]
                            [--prior fit|proportions] [--checkpoint model.pt] [--markdown BENCHMARKS.md]
    detections without CAD ids, the CAD chosen among K of its class (`align --choose-cad K`), against the
    same clean scenes aligned with the true CADs: accuracy, how often the true CAD is chosen, time per object;
    with --rgbd also from each scene's RGB-D files with boxes and categories only, made into a bundle as
    `multisparc bundle` does (`multisparc.benchmarks.choose_cad`).

multisparc bench training --run runs/cpu [--after PHASE...] [--command "..."] [--plot PNG]
                          [--markdown BENCHMARKS.md [--section NAME --title TITLE]]
    the learning curve of a training run from its metrics.jsonl: validation accuracy against training
    time as a PNG and a table, with the command that trained it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multisparc.inference.cad_prior import CAD_PRIORS
from multisparc.scenes.noise import NOISE_LEVELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="benchmark", required=True)
    data = sub.add_parser("data", help="synthetic training examples per second")
    data.add_argument("--scenes", type=int, default=400, help="scenes per sparse measurement")
    data.add_argument("--full-scenes", type=int, default=40, help="scenes per full-frame measurement")
    data.add_argument("--objects", type=int, default=4)
    data.add_argument(
        "--noise", nargs="+", default=["clean", "realistic"], choices=tuple(NOISE_LEVELS),
        help="perception noise levels to measure (clean: the exact render)",
    )
    data.add_argument("--count-scenes", type=int, default=40, help="scenes whose rays are counted per level")
    data.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the fastest is kept")
    data.add_argument("--cads", type=Path, default=None, help="CAD index (default: procedural library)")
    data.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    data.add_argument("--seed", type=int, default=0)
    speed = sub.add_parser("speed", help="alignment time per image, joint against sequential")
    speed.add_argument("--objects", type=int, nargs="+", default=[1, 5, 10], help="objects per image")
    speed.add_argument("--configs", nargs="+", default=["paper", "cpu"], help="config presets or YAML files")
    speed.add_argument("--repeats", type=int, default=5, help="timed alignments per case (after a warm-up)")
    speed.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    speed.add_argument(
        "--precisions", nargs="+", default=["float32", "bfloat16"], choices=("float32", "bfloat16"),
        help="network precisions to time (bfloat16 runs are reported as '<config> bf16')",
    )
    speed.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    speed.add_argument("--cads", type=Path, default=None, help="CAD index (default: procedural library)")
    speed.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    speed.add_argument("--seed", type=int, default=0)
    stages = sub.add_parser("stages", help="time per image of each pipeline, split by stage")
    stages.add_argument("--objects", type=int, default=5, help="objects in the image")
    stages.add_argument("--pipelines", nargs="+", default=["paper", "full"], help="pipeline names to time")
    stages.add_argument("--repeats", type=int, default=5, help="timed alignments per pipeline (after a warm-up)")
    stages.add_argument("--checkpoint", type=Path, default=None, help="model file (default: the shipped network)")
    stages.add_argument("--cads", type=Path, default=None, help="CAD index (default: the demo's procedural library)")
    stages.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    stages.add_argument("--seed", type=int, default=0)
    starts = sub.add_parser("starts", help="initial errors of the paper's and the observed start")
    starts.add_argument("--sets", type=Path, nargs="+", required=True, help="set folders (bundles and cads.json)")
    starts.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    ablation = sub.add_parser("ablation", help="the test-time stages over several evaluate results")
    ablation.add_argument("--results", type=Path, nargs="+", required=True, help="evaluate output folders")
    ablation.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    ablation.add_argument("--section", default="ablation", help="section name in the --markdown file")
    ablation.add_argument(
        "--targets", nargs="+", default=[], metavar="SET=PERCENT",
        help="instance accuracy the full pipeline should reach on a set, reported as met or missed",
    )
    ablation.add_argument("--title", default="Test-time stages: the ablation", help="the section's title")
    ablation.add_argument(
        "--about", default=None, help="what the rows are (default: the test-time stages and the ICP baseline)"
    )
    failures = sub.add_parser("failures", help="where a method's poses fail: flips, turns, translation, scale")
    failures.add_argument("--results", type=Path, nargs="+", required=True, help="evaluate output folders")
    failures.add_argument("--method", default="multisparc", help="the method whose predictions are sorted")
    failures.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    failures.add_argument("--section", default="failures", help="section name in the --markdown file")
    failures.add_argument("--title", default=None, help="the section's title (default: names the method)")
    model = sub.add_parser("model", help="parameters and FLOPs per forward pass of the presets' networks")
    model.add_argument("--presets", nargs="+", default=["paper", "gpu", "cpu", "tiny"], help="training presets")
    model.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    choose = sub.add_parser("choose-cad", help="choosing the CAD among K of the class against the true CAD")
    choose.add_argument("--scenes", type=int, default=20, help="scenes per set")
    choose.add_argument("--k", type=int, default=10, help="candidate CADs per detection")
    choose.add_argument("--per-class", type=int, default=16, help="procedural models per class in the library")
    choose.add_argument("--sets", nargs="+", default=["procedural", "sweethome3d"], help="procedural, sweethome3d")
    choose.add_argument("--sweethome3d", type=Path, default=None, help="the SweetHome3D catalogue folder")
    choose.add_argument("--work", type=Path, default=None, help="keep scenes and predictions here (default: temporary)")
    choose.add_argument("--checkpoint", type=Path, default=None, help="model file (default: the shipped network)")
    choose.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    choose.add_argument("--seed", type=int, default=0, help="scene seed")
    choose.add_argument(
        "--rgbd", action="store_true", help="also from RGB-D files (JPEG, 16-bit PNG, K, boxes with categories only)"
    )
    choose.add_argument(
        "--prior", choices=CAD_PRIORS, default=CAD_PRIORS[0], help="how the K candidates are ranked (--cad-prior)"
    )
    training = sub.add_parser("training", help="learning curve of a training run (metrics.jsonl)")
    training.add_argument("--run", type=Path, required=True, help="the run folder (holds metrics.jsonl)")
    training.add_argument(
        "--after", type=Path, nargs="+", default=[],
        help="earlier phases, in order, whose weights the run started from (--init-from): their records come first",
    )
    training.add_argument("--command", default=None, help="the command that trained the run, for the record")
    training.add_argument("--plot", type=Path, default=None, help="PNG path (default: RUN/learning_curve.png)")
    training.add_argument("--rows", type=int, default=12, help="validation records in the table")
    training.add_argument("--markdown", type=Path, default=None, help="write the results into this file")
    training.add_argument("--section", default="training", help="the section of --markdown (default training)")
    training.add_argument("--title", default="Training: learning curve", help="the section's title")


def _data(args: argparse.Namespace) -> int:
    import tempfile
    from dataclasses import replace

    from multisparc.benchmarks.data import FEW_PIXELS, RAY_KINDS, STAGES, DataBenchmarkCase, count_rays, measure
    from multisparc.benchmarks.report import markdown_table, section, update_markdown
    from multisparc.cad.procedural import build_library
    from multisparc.inputs import InputConfig

    rows, ratios, floors = [], [], []
    inputs = InputConfig.paper()
    few = f"sparse, {FEW_PIXELS:.0%} of the pixels"
    with tempfile.TemporaryDirectory() as tmp:
        cads_json = args.cads if args.cads is not None else build_library(Path(tmp) / "cads", seed=args.seed)
        for noise in args.noise:
            rates = {}
            sparse = DataBenchmarkCase(str(cads_json), args.objects, inputs, noise, False, args.seed)
            measured = (
                [(sparse, "sparse", args.scenes, workers) for workers in (1, 2)]
                + [(sparse.with_pixel_share(FEW_PIXELS), few, args.scenes, 1)]
                + [(replace(sparse, full_frame=True), "full frame", args.full_scenes, workers) for workers in (1, 2)]
            )
            rays = {}
            for case, name, n, workers in measured:
                if name not in rays:
                    rays[name] = count_rays(case, args.count_scenes)
                result = measure(case, n, workers, args.repeats)
                rate = rates[name, workers] = result.examples_per_second
                rows.append(
                    [noise, name, workers, n, f"{rate:.1f}", f"{1000.0 / rate:.2f}"]
                    + [f"{result.stage_ms[stage]:.2f}" for stage in STAGES]
                    + [f"{rays[name][kind]:.0f}" for kind in RAY_KINDS]
                )
                print(f"{noise:9s} {name:10s} {workers} process(es): {rate:8.1f} examples/s")
            ratios.append(
                f"{noise}: {rates['sparse', 1] / rates['full frame', 1]:.1f}x (1 process), "
                f"{rates['sparse', 2] / rates['full frame', 2]:.1f}x (2 processes)"
            )
            floors.append(
                f"{noise}: {1000.0 / rates[few, 1]:.2f} of {1000.0 / rates['sparse', 1]:.2f} ms "
                f"({rates['sparse', 1] / rates[few, 1]:.0%})"
            )
    header = ["noise", "rendering", "processes", "scenes", "examples/s", "ms/example"]
    header += [f"{stage} ms" for stage in STAGES]
    header += [f"{kind} rays/example" for kind in RAY_KINDS]
    body = (
        f"Training examples per second: scenes of {args.objects} objects, paper inputs (2000 box pixels + "
        "500 CAD points per object), procedural CAD library; `clean` is the exact render, `realistic` the "
        f"perception noise the shipped configurations train with. Each rate is the fastest of {args.repeats} "
        "timed runs over the same scenes. Stage times, of that run, per example within one "
        "process: scene (sampling: placement and visibility), box tokens (the observation: sparse, the "
        "detections and the box pixels' render; full frame, the frame and its bundle; and the box tokens "
        "read from it), pose tokens (one pose per detection). Rays per "
        f"example: what each path hands the ray caster, counted over {args.count_scenes} scenes (render: "
        "camera rays of the sparse renders or of the full frame; visibility: scene sampling's; shadow: "
        "towards the light). The sparse path casts a ray for every distinct pixel it reads, and the "
        "realistic noise reads depth, normals and masks at displaced pixels.\n\n"
        + markdown_table(header, rows)
        + "\n\nSparse over full-frame speed-up: " + "; ".join(ratios) + ".\n\n"
        + f"Time per sparse example (1 process) with {FEW_PIXELS:.0%} of the pixels (box pixels, CAD points "
        "and visibility samples), against all of them: the work that does not shrink with the pixels: "
        + "; ".join(floors) + ".\n"
    )
    if args.markdown is not None:
        update_markdown(args.markdown, "data", section("data", "Synthetic training data throughput", body))
        print(f"wrote the results into {args.markdown}")
    return 0


def _speed(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    from multisparc.benchmarks.report import markdown_table, update_markdown
    from multisparc.benchmarks.speed import measure_speed
    from multisparc.benchmarks.speed_report import rows, section_name, speed_section, targets
    from multisparc.cad import CadIndex
    from multisparc.cad.procedural import build_library
    from multisparc.training.config import load_config

    if args.repeats < 1 or min(args.objects) < 1:
        raise ValueError("--repeats and every --objects count must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configs = [(str(name), load_config(name)) for name in args.configs]
    with tempfile.TemporaryDirectory() as tmp:
        # Two models a class suffice: the number of CAD models does not change the run time.
        cads_json = args.cads if args.cads is not None else build_library(Path(tmp) / "cads", 2, args.seed)
        cads = CadIndex.load(cads_json)
        report = measure_speed(
            configs, args.objects, cads, args.repeats, args.device, args.seed, progress=True,
            precisions=args.precisions,
        )
    print(f"float32 matmul peak: {report.peak_flop_rate / 1e9:.1f} GFLOP/s ({report.threads} threads)")
    print(markdown_table(["config", "objects", "strategy", "ms/image"], [row[:4] for row in rows(report)]))
    for target in targets(report):
        print(f"{target.verdict:12s} {target.goal}: {target.measured}")
    if args.markdown is not None:
        update_markdown(args.markdown, section_name(report), speed_section(report))
        print(f"wrote the results into {args.markdown}")
    return 0


def _training(args: argparse.Namespace) -> int:
    import functools

    from multisparc.benchmarks.report import section, update_markdown
    from multisparc.benchmarks.training import LearningCurve

    phases = [LearningCurve.read(phase / "metrics.jsonl") for phase in [*args.after, args.run]]
    curve = functools.reduce(lambda earlier, later: later.after(earlier), phases)
    plot = curve.plot(args.plot or args.run / "learning_curve.png")
    table = curve.table(args.rows)
    print(table)
    print(f"learning curve: {plot}")
    last = curve.last
    trained_by = f"Trained by: `{args.command}`  \n" if args.command else ""
    after = f" after {', '.join(f'`{phase}`' for phase in args.after)}" if args.after else ""
    body = (
        f"{trained_by}Run: `{args.run}`{after}, {int(last['step'])} steps, {last['elapsed_s'] / 3600.0:.2f} h of "
        "training. Validation: the run's fixed, seeded set of synthetic scenes; every true detection starts "
        "from an initial pose drawn as the run's update examples are (`training.examples`: within 45 deg "
        "azimuth of the truth, placed near the test-time initialisation or at z ~ U(1, 5) m as the run's "
        "near_init_ratio says) and is refined 3 times; accuracy = "
        "20 cm / 20 deg / 20 % (per-axis scale); point L1 = mean L1 distance of 1000 CAD points to the "
        "ground truth (symmetry-aware); classifier accuracy on classifier-region poses (about half correct); "
        "selected = the test-time protocol: every detection's 4 hypotheses 90 deg apart in azimuth (one of "
        "them the start above), each refined 3 times, the one of highest score chosen ('-' before the "
        "trainer reported it).\n\n"
        f"{table}\n\n![learning curve]({plot.as_posix()})\n"
    )
    if args.markdown is not None:
        update_markdown(args.markdown, args.section, section(args.section, args.title, body))
        print(f"wrote the results into {args.markdown}")
    return 0


def _stages(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    from multisparc.benchmarks.report import machine_description, markdown_table, section, update_markdown
    from multisparc.benchmarks.stage_times import measure_stage_times
    from multisparc.cad import CadIndex
    from multisparc.cad.procedural import build_library
    from multisparc.commands.demo import LIBRARY_PER_CLASS, LIBRARY_SEED
    from multisparc.inference import load_checkpoint, shipped_checkpoint
    from multisparc.inference.stages import pipeline_stages

    for name in args.pipelines:
        pipeline_stages(name)
    checkpoint = args.checkpoint or shipped_checkpoint()
    model, inputs = load_checkpoint(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        cads_json = args.cads or build_library(Path(tmp) / "cads", per_class=LIBRARY_PER_CLASS, seed=LIBRARY_SEED)
        scene, times = measure_stage_times(
            model, inputs, CadIndex.load(cads_json), args.pipelines, args.objects, args.repeats, args.seed
        )
    names: list[str] = []
    for run in times:
        names += [name for name in run.stage_ms if name not in names]
    header = ["pipeline", "total ms"] + [f"{name} ms" for name in names]
    rows = [
        [run.pipeline, f"{run.total_ms:.0f}"] + [f"{run.stage_ms.get(name, 0.0):.1f}" for name in names]
        for run in times
    ]
    copies = f" ({scene.replicated} of them copies)" if scene.replicated else ""
    body = (
        f"Network `{checkpoint.name}`, one synthetic image with {len(scene.detections)} objects{copies}, clean "
        f"noise, {torch.get_num_threads()} torch threads; the median of {args.repeats} alignments after a warm-up, "
        "the pipelines taking turns (one alignment each per round, so that the machine's speed drifting during "
        "the run slows every row alike), split by the pipeline's stage timers (those of the median run).\n\n"
        + markdown_table(header, rows) + "\n"
    )
    print(body)
    print(machine_description())
    if args.markdown is not None:
        update_markdown(args.markdown, "stages", section("stages", "Time per image of each pipeline, by stage", body))
        print(f"wrote the results into {args.markdown}")
    return 0


def _starts(args: argparse.Namespace) -> int:
    from multisparc.benchmarks.report import markdown_table, section, update_markdown
    from multisparc.benchmarks.starts import start_errors
    from multisparc.cad import CadIndex
    from multisparc.commands.align import find_scenes

    rows = []
    for folder in args.sets:
        for errors in start_errors(find_scenes([folder]), CadIndex.load(folder / "cads.json")):
            rows.append(
                [folder.name, errors.start, errors.n_objects, f"{100 * errors.t:.1f}", f"{errors.r_deg:.1f}",
                 f"{100 * errors.s:.1f}"]
            )
    body = (
        "Median errors of the initial poses over each set's detected objects: the paper's start (box-centre "
        "ray, median depth plus half the class's typical depth, the class's typical scale) and the observed "
        "start (`inference.observed_start`: the trimmed centroid of the back-projected depth moved into the "
        "model's box, scale from the observed height). Rotation: the hypothesis nearest the truth (the 4 "
        "azimuths are the same in both); translation and scale on that hypothesis.\n\n"
        + markdown_table(["set", "start", "objects", "t cm", "r deg", "s %"], rows) + "\n"
    )
    print(body)
    if args.markdown is not None:
        title = "Initial poses: the paper's and the observed start"
        update_markdown(args.markdown, "starts", section("starts", title, body))
        print(f"wrote the results into {args.markdown}")
    return 0


STAGES_ABOUT = (
    "multisparc is the full pipeline, multisparc-paper the paper's; +start, +mask, +verify and +fit add one stage "
    "to the paper's (+fit: the verification and the depth fit); the full pipeline is +fit with the depth masks "
    "and the depth-only fits. icp is the depth-only ICP baseline, icp-back-faces the same pairing observed points "
    "with back-facing CAD samples too (IcpConfig.back_faces)."
)


def _ablation(args: argparse.Namespace) -> int:
    from multisparc.benchmarks.ablation import SetResults, ablation_table
    from multisparc.benchmarks.report import section, update_markdown

    sets = [SetResults.read(folder) for folder in args.results]
    targets = {}
    for item in args.targets:
        name, _, value = item.partition("=")
        try:
            targets[name] = float(value)
        except ValueError:
            raise ValueError(f"--targets {item}: expected SET=PERCENT, e.g. procedural-clean=80") from None
    presets = sorted({results.preset for results in sets})
    body = (
        f"Per-scene accuracy ({', '.join(presets)} preset) of each method on each set: instance accuracy, class "
        "mean (both %) and time per image (ms, alignment without file I/O), from the results tables of the "
        "sets below (`multisparc evaluate`, folders " + ", ".join(f"`{folder}`" for folder in args.results)
        + "). "
        + (args.about or STAGES_ABOUT)
        + "\n\n"
        + ablation_table(sets, targets)
    )
    print(body)
    if args.markdown is not None:
        update_markdown(args.markdown, args.section, section(args.section, args.title, body))
        print(f"wrote the results into {args.markdown}")
    return 0


def _model(args: argparse.Namespace) -> int:
    from multisparc.benchmarks.report import markdown_table, section, update_markdown
    from multisparc.model import MultiSparcNet
    from multisparc.training.config import load_config

    rows = []
    for name in args.presets:
        config = load_config(name)
        net = MultiSparcNet(config.model)
        n_input = config.inputs.n_bbox + 2 * config.inputs.n_cad
        model = config.model
        rows.append(
            [
                name,
                f"{model.n_latent} x {model.c_latent}",
                model.embedding + (f", {model.compare_pairs} compared pairs" if model.compare_pairs else ""),
                f"{config.inputs.n_bbox} + 2 x {config.inputs.n_cad}",
                f"{net.count_parameters() / 1e6:.3f}",
                f"{net.flops_per_forward(1, n_input) / 1e9:.2f}",
            ]
        )
    body = (
        "Size of each preset's network: latents per object, token embedding, tokens per object (box pixels + "
        "reprojected and CAD points), parameters, and FLOPs of one forward pass of one item (n_mul = 5 objects; "
        "matrix products only, `MultiSparcNet.flops_per_forward`, checked against torch's FLOP counter in the "
        "tests). A refinement step of one image with 4 hypotheses costs 4 such passes per 5 objects.\n\n"
        + markdown_table(
            ["preset", "latents", "embedding", "tokens per object", "parameters [M]", "GFLOP per pass"], rows
        )
        + "\n"
    )
    print(body)
    if args.markdown is not None:
        update_markdown(args.markdown, "model", section("model", "Network size of the presets", body))
        print(f"wrote the results into {args.markdown}")
    return 0


def _choose_cad(args: argparse.Namespace) -> int:
    import tempfile

    from multisparc.benchmarks.choose_cad import choose_cad_section, make_scenes, run_set
    from multisparc.benchmarks.report import update_markdown
    from multisparc.inference import Aligner, load_checkpoint, shipped_checkpoint

    if args.scenes < 1 or args.k < 1 or args.per_class < 1:
        raise ValueError("--scenes, --k and --per-class must be at least 1")
    checkpoint = args.checkpoint or shipped_checkpoint()
    model, inputs = load_checkpoint(checkpoint)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in args.sets:
            scenes, library = make_scenes(work, name, args.per_class, args.sweethome3d, args.scenes, args.seed)
            aligner = Aligner(model, inputs, library, seed=args.seed)
            rows += run_set(aligner, name, scenes, args.k, work / name, rgbd=args.rgbd, prior=args.prior)
    body = choose_cad_section(rows, checkpoint.name, args.scenes, args.k, args.per_class, args.prior)
    print(body)
    if args.markdown is not None:
        update_markdown(args.markdown, "choose-cad", body)
        print(f"wrote the results into {args.markdown}")
    return 0


def _failures(args: argparse.Namespace) -> int:
    from multisparc.benchmarks.failures import failure_tables, method_outcomes
    from multisparc.benchmarks.report import section, update_markdown

    by_set = {Path(folder).resolve().name: method_outcomes(folder, args.method) for folder in args.results}
    body = (
        f"Where the poses of `{args.method}` fail, from its predictions in the evaluate folders "
        + ", ".join(f"`{folder}`" for folder in args.results)
        + ": each prediction against the ground truth of the object it was made for (spurious and missed "
        "detections left out), sorted by kind (`multisparc.benchmarks.failures`): aligned (20 cm, 20 deg, 20 % "
        "per axis); a rotation error above 20 deg as a flip (150 to 180 deg), a quarter turn (60 to 120 deg) "
        "or another rotation, whatever the translation and scale; with the rotation right, translation, "
        "scale, or both. Shares in % of the objects of the row.\n\n" + failure_tables(by_set)
    )
    print(body)
    if args.markdown is not None:
        title = args.title or f"Where the poses fail ({args.method})"
        update_markdown(args.markdown, args.section, section(args.section, title, body))
        print(f"wrote the results into {args.markdown}")
    return 0


def run(args: argparse.Namespace) -> int:
    commands = {
        "data": _data, "speed": _speed, "stages": _stages, "starts": _starts, "ablation": _ablation,
        "training": _training, "model": _model, "choose-cad": _choose_cad, "failures": _failures,
    }
    return commands[args.benchmark](args)
