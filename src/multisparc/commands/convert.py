"""Convert released datasets into scene bundles.

  multisparc convert scannet --scannet DIR --scan2cad full_annotations.json --shapenet DIR --out DIR
                             [--scenes LIST | --split val] [--every N] [--size 480x360]
                             [--oracle-detections] [--strict]

DIR (--scannet) holds one folder per scan, in the layout of ScanNet's SensReader export (color/<n>.jpg,
depth/<n>.png, pose/<n>.txt, intrinsic/intrinsic_color.txt, intrinsic/intrinsic_depth.txt) or of
scannet_frames_25k (color/000000.jpg, ..., intrinsics_color.txt, intrinsics_depth.txt). --shapenet is
ShapeNetCore v2 (<synset>/<model id>/models/model_normalized.obj).

OUT gets one scene bundle per frame, OUT/<scan>_<frame, 6 digits>/ (image, camera.json with cam_to_world,
up and scene_id, depth.npy, normals.npy, gt.json: the Scan2CAD objects the paper's per-image rule keeps,
scene_gt.json: every annotated object of the scan, detections.json: empty, or the ground truth's boxes and
masks with --oracle-detections), and OUT/cads.json (the ShapeNet models used). Frames whose pose holds inf
or NaN are skipped with a count; objects of classes outside the 9 and objects whose CAD the ShapeNet folder
lacks are left out with a count (--strict: a missing CAD is an error). A rerun keeps the frames already
converted. Then: `multisparc evaluate --scenes OUT --cads OUT/cads.json --preset sparc ...` scores every
frame of a scan together in the scan's frame (Table 1) and each frame on its own. See docs/SCANNET.md.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from multisparc.commands.bundle import parse_size

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    scannet = sub.add_parser(
        "scannet",
        help="ScanNet v2 scans with Scan2CAD annotations and ShapeNet CADs: one scene bundle per frame",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scannet.add_argument(
        "--scannet", type=Path, required=True, metavar="DIR", help="folder of scan folders (<scannet>/<scan id>/)"
    )
    scannet.add_argument(
        "--scan2cad", type=Path, required=True, metavar="FILE", help="Scan2CAD's full_annotations.json"
    )
    scannet.add_argument(
        "--shapenet", type=Path, required=True, metavar="DIR", help="ShapeNetCore v2 folder (<synset>/<id>/models/)"
    )
    scannet.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder of scene bundles and cads.json"
    )
    which = scannet.add_mutually_exclusive_group()
    which.add_argument(
        "--scenes",
        metavar="LIST",
        help="scan ids, comma-separated, or a text file with one per line (default: every scan folder "
        "of --scannet that Scan2CAD annotates)",
    )
    which.add_argument(
        "--split",
        metavar="SPLIT",
        help="train or val: the scans of ScanNet's scannetv2_<split>.txt (looked for in --scannet and its parent; "
        "or give the file's path) that Scan2CAD annotates",
    )
    scannet.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="keep the frames whose number is a multiple of N (default 1: all; "
        "100 gives scannet_frames_25k's frames from a SensReader export)",
    )
    scannet.add_argument(
        "--size", type=parse_size, default=(480, 360), metavar="WxH", help="bundle image size (default 480x360, ROCA's)"
    )
    scannet.add_argument(
        "--oracle-detections",
        action="store_true",
        help="write detections.json from the ground truth (boxes, masks, "
        "annotated CADs) to measure alignment apart from detection",
    )
    scannet.add_argument("--strict", action="store_true", help="a CAD missing from --shapenet is an error")


def scan_list(text: str) -> list[str]:
    """The scan ids of --scenes: a text file with one per line, or comma-separated ids."""
    path = Path(text)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [item.strip() for item in text.split(",") if item.strip()]


def split_file(split: str, scannet: Path) -> Path:
    """The scan list of --split: a file path, or `scannetv2_<split>.txt` in --scannet or its parent."""
    path = Path(split)
    if path.is_file():
        return path
    name = f"scannetv2_{split}.txt"
    for folder in (scannet, scannet.parent):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"--split {split}: no {name} in {scannet} or {scannet.parent}; get it from ScanNet's repository "
        "(Tasks/Benchmark/) or give its path"
    )


def chosen_scans(args: argparse.Namespace, annotated: list[str]) -> list[str]:
    """The scans to convert: --scenes as given; --split's annotated scans; else every annotated scan folder."""
    if args.scenes is not None:
        scans = scan_list(args.scenes)
        if not scans:
            raise ValueError(f"--scenes {args.scenes!r} names no scan")
        return scans
    known = set(annotated)
    if args.split is not None:
        listed = scan_list(str(split_file(args.split, args.scannet)))
        return [scan for scan in listed if scan in known]
    if not args.scannet.is_dir():
        raise FileNotFoundError(f"--scannet {args.scannet}: no such folder")
    return sorted(child.name for child in args.scannet.iterdir() if child.is_dir() and child.name in known)


def run(args: argparse.Namespace) -> int:
    from multisparc.evaluation.converters import read_scan2cad_annotations
    from multisparc.evaluation.scannet_conversion import (
        ConversionCounts,
        annotated_scan,
        convert_scan,
        scan_folders,
        write_cads_json,
    )

    if args.every < 1:
        raise ValueError(f"--every must be at least 1, got {args.every}")
    if args.out.exists() and not args.out.is_dir():
        raise FileExistsError(f"--out {args.out}: is a file; give the folder to write the bundles into")
    annotations = read_scan2cad_annotations(args.scan2cad)
    scans = chosen_scans(args, list(annotations))
    if not scans:
        raise ValueError(f"{args.scannet}: no scan folder that {args.scan2cad} annotates (or that the split lists)")
    counts = ConversionCounts()
    annotated = [annotated_scan(scan, annotations, args.scan2cad, args.shapenet, counts, args.strict) for scan in scans]
    folders = scan_folders(args.scannet, scans)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for folder, scan in zip(folders, annotated, strict=True):
        written = convert_scan(
            folder, scan, args.out, counts, every=args.every, size=tuple(args.size), oracle=args.oracle_detections
        )
        write_cads_json(args.out / "cads.json", scan.cads)
        log.info("%s (%s layout): %d frame(s) written", folder.scan, folder.layout, len(written))
    seconds = time.perf_counter() - start
    if counts.missing_cads:
        shown = ", ".join(sorted(counts.missing_cads)[:5])
        log.warning(
            "%d CAD(s) missing from %s (e.g. %s): their %d object(s) are left out of the ground truth",
            len(counts.missing_cads),
            args.shapenet,
            shown,
            counts.missing_objects,
        )
    per_frame = f", {1000 * seconds / counts.written:.0f} ms per frame" if counts.written else ""
    print(f"{len(scans)} scan(s): {counts.summary()}{per_frame}")
    print(f"wrote {args.out}/ and {args.out / 'cads.json'}")
    print(f"score predictions with: multisparc evaluate --scenes {args.out} --cads {args.out / 'cads.json'} ...")
    return 0
