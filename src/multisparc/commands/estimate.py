"""Depth, normals and intrinsics of photos, for alignment without a depth camera.

  multisparc estimate IMAGE... --out DIR [--weights DIR] [--model ID] [--fov DEG] [--max-side PX]
                      [--device cpu|cuda] [--detections boxes.json --cads cads.json]

For each photo, DIR/<photo name>/ becomes a scene bundle: image.png, camera.json (K from the photo's EXIF
focal length, 35 mm equivalent or focal length with the sensor's pixel pitch, else a 60 deg horizontal
field of view; --fov DEG overrides both), depth.npy (z-depth in metres predicted by a monocular metric
depth network), normals.npy (fitted to that depth, camera frame) and detections.json: the boxes of
--detections (one photo; in its pixels as viewers show it, each with a CAD of --cads), or none. With boxes
it is ready for `multisparc align`; without, make it one with

  multisparc bundle --image DIR/NAME/image.png --depth DIR/NAME/depth.npy --intrinsics DIR/NAME/camera.json
                    --detections boxes.json --cads cads.json --out BUNDLE

The network: Depth Anything V2, indoor metric (trained on the synthetic Hypersim scenes, depth up to 20 m),
through Hugging Face transformers, an optional extra: pip install 'multisparc[estimate]'. The default,
depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf (24.8 M parameters, Apache-2.0), is a 99 MB download
from the Hugging Face hub on first use, kept in its cache (~/.cache/huggingface, or $HF_HOME) and read from
there afterwards without the network. The larger --model depth-anything/Depth-Anything-V2-Metric-Indoor-Base-hf
(390 MB) and -Large-hf (1.3 GB) are licensed CC-BY-NC-4.0: non-commercial use only. Offline, give a download
of the model's repository (config.json, model.safetensors, preprocessor_config.json) with --weights DIR.

Predicted depth errs far more than a depth camera's (tens of centimetres indoors, much of it one scale for
the whole image): alignment from a photo is less accurate than from an RGB-D frame (README, "From a photo").
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from multisparc.estimate.depth_model import DEFAULT_MODEL
from multisparc.estimate.photo import DEFAULT_MAX_SIDE

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="photos (JPEG, PNG, ...)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the bundles, one sub-folder per photo")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="ID",
        help=f"model hub id of the metric depth network (default {DEFAULT_MODEL}: 99 MB, Apache-2.0, "
        "fetched once into the Hugging Face cache)",
    )
    parser.add_argument(
        "--weights", type=Path, default=None, metavar="DIR", help="a local copy of the network (no download)"
    )
    parser.add_argument(
        "--fov",
        type=float,
        default=None,
        metavar="DEG",
        help="horizontal field of view in degrees, overriding the EXIF focal length (without either: 60)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=DEFAULT_MAX_SIDE,
        metavar="PX",
        help=f"photos whose longer side exceeds this are scaled down to it (default {DEFAULT_MAX_SIDE}; 0: never)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="where the network runs (default: cuda when available)"
    )
    parser.add_argument("--detections", type=Path, default=None, help="boxes JSON of the one photo (bundle's format)")
    parser.add_argument("--cads", type=Path, default=None, help="the CAD index the detections name (cads.json)")


def bundle_dirs(images: list[Path], out: Path) -> list[Path]:
    """DIR/<photo stem> for each photo; ValueError when two photos share a name or a folder is taken."""
    from multisparc.datasets.rgbd import check_new_bundle_dir

    dirs: dict[str, Path] = {}
    for image in images:
        if image.stem in dirs:
            raise ValueError(f"{image} and {dirs[image.stem]} would share the bundle {out / image.stem}: rename one")
        dirs[image.stem] = image
        check_new_bundle_dir(out / image.stem)
    return [out / image.stem for image in images]


def check_photo(path: Path) -> None:
    """Refuse, naming it, a photo that is missing or not a readable image, before the network loads."""
    from PIL import Image

    from multisparc.datasets.bundle import BundleError

    if not path.is_file():
        raise BundleError(path, "file not found")
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError) as err:
        raise BundleError(path, f"not a readable image ({err})") from None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from multisparc.estimate.depth_model import load_depth_model
    from multisparc.estimate.photo import photo_bundle

    if (args.detections is None) != (args.cads is None):
        raise ValueError("--detections and --cads go together: the boxes name CAD models of the index")
    if args.detections is not None and len(args.images) != 1:
        raise ValueError(f"--detections holds the boxes of one photo; {len(args.images)} photos were given")
    if args.max_side < 0:
        raise ValueError(f"--max-side must be 0 (never scale down) or a positive number of pixels, got {args.max_side}")
    for image in args.images:
        check_photo(image)
    outs = bundle_dirs(args.images, args.out)
    cads = None
    if args.cads is not None:
        from multisparc.cad import CadIndex
        from multisparc.datasets.rgbd import read_box_detections
        from multisparc.estimate.intrinsics import upright_photo

        cads = CadIndex.load(args.cads)
        height, width = upright_photo(args.images[0]).shape[:2]
        read_box_detections(args.detections, width, height, cads)  # bad boxes are refused before the network loads
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_depth_model(args.weights, args.model, device)
    from multisparc.datasets.bundle import write_json
    from multisparc.datasets.rgbd import write_new_bundle

    for image, out in zip(args.images, outs, strict=True):
        bundle, intrinsics = photo_bundle(
            out.name, image, model, args.fov, args.max_side or None, args.detections, cads
        )
        write_new_bundle(out, bundle)
        obs = bundle.observation
        write_json(
            out / "estimate.json",
            {
                "photo": str(image),
                "model": model.name,
                "intrinsics": intrinsics.source,
                "photo_K": np.asarray(intrinsics.K).tolist(),
            },
        )
        known = obs.depth[obs.depth > 0]
        median = float(np.median(known)) if known.size else float("nan")
        print(
            f"wrote {out}/: {obs.camera.width} x {obs.camera.height}, median depth {median:.2f} m, K from "
            f"{intrinsics.source}, {len(bundle.detections)} detection(s)"
        )
    if args.detections is not None:
        print(f"align it with: multisparc align {outs[0]} --cads {args.cads} --checkpoint MODEL.pt --out DIR")
    else:
        name = outs[0]
        print(
            f"add boxes with: multisparc bundle --image {name}/image.png --depth {name}/depth.npy --intrinsics "
            f"{name}/camera.json --detections boxes.json --cads cads.json --out BUNDLE"
        )
    return 0
