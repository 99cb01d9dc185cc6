"""Make a scene bundle of one RGB-D frame: a colour image, its depth, intrinsics and boxes with CAD models.

  multisparc bundle --image IMG --depth DEPTH (--intrinsics K | --fov DEG) --detections DETS --cads cads.json
                    --out BUNDLE [--depth-scale S] [--depth-intrinsics KD] [--size WxH] [--normals-radius R]

DEPTH is a 16-bit PNG (millimetres: --depth-scale 0.001 by default, as ScanNet, RealSense and Kinect write
it), a .npy (float metres) or an .exr (metres; needs `pip install 'multisparc[exr]'`). --depth-scale gives
the metres per stored unit of another file; a depth whose median lies beyond 0.1 to 20 m is refused as a
wrong unit. The depth must be registered to the colour image (the same viewpoint); its intrinsics
(--depth-intrinsics) may differ: without them the colour K is scaled to the depth's size, which holds only
when both share the optical centre and the field of view (another aspect ratio is refused).

K is a 3x3 or 4x4 text matrix (ScanNet's intrinsic_color.txt), or a JSON with "K" (camera.json) or with
"fx", "fy", "cx", "cy"; --fov DEG is the horizontal field of view with the principal point at the centre.

DETS is a JSON list [{"bbox": [x1, y1, x2, y2], "category": "chair", "cad": "<id in cads.json>", "score":
0.9 (optional), "mask": "mask.png" or a COCO RLE (optional)}] in the colour image's pixels; without "cad" the
detection gives its category only, and `multisparc align --choose-cad K` chooses its CAD.

BUNDLE (a new or empty folder) gets image.png, camera.json, depth.npy (metres), normals.npy (fitted to the
depth, camera frame) and detections.json, at the depth's resolution (or --size WxH: ROCA works at
480x360), K and boxes scaled to it. Nothing is written unless the whole bundle is; then
`multisparc align BUNDLE --cads cads.json --checkpoint model.pt --out DIR` aligns it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multisparc.datasets.normals import DEFAULT_RADIUS


def parse_size(text: str) -> tuple[int, int]:
    """`WxH` (e.g. 480x360) as (W, H) positive pixels."""
    try:
        width, height = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, e.g. 480x360, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--image", type=Path, required=True, help="colour image (PNG, JPEG, ...)")
    parser.add_argument("--depth", type=Path, required=True, help="depth registered to it: 16-bit PNG, .npy, .exr")
    camera = parser.add_mutually_exclusive_group(required=True)
    camera.add_argument("--intrinsics", type=Path, help="the colour camera's K: 3x3/4x4 text file or JSON")
    camera.add_argument("--fov", type=float, help="horizontal field of view in degrees (principal point centred)")
    parser.add_argument("--detections", type=Path, required=True, help="JSON list of boxes with category and cad")
    parser.add_argument("--cads", type=Path, required=True, help="the CAD index (cads.json) the detections name")
    parser.add_argument("--out", type=Path, required=True, help="the scene bundle folder to write (new or empty)")
    parser.add_argument(
        "--depth-scale",
        type=float,
        default=None,
        help="metres per stored depth unit (default 0.001 for 16-bit PNG, 1 for float .npy and .exr)",
    )
    parser.add_argument("--depth-intrinsics", type=Path, default=None, help="the depth camera's K, when it differs")
    parser.add_argument(
        "--size", type=parse_size, default=None, metavar="WxH", help="bundle image size (default: the depth's)"
    )
    parser.add_argument(
        "--normals-radius",
        type=int,
        default=DEFAULT_RADIUS,
        help=f"half-width in depth pixels of the plane-fit window of the normals (default {DEFAULT_RADIUS}: 7x7); "
        "larger for noisier depth",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from multisparc.cad import CadIndex
    from multisparc.datasets.rgbd import check_new_bundle_dir, rgbd_bundle, write_new_bundle

    if args.normals_radius < 1:
        raise ValueError(f"--normals-radius must be at least 1, got {args.normals_radius}")
    check_new_bundle_dir(args.out)
    cads = CadIndex.load(args.cads)
    bundle = rgbd_bundle(
        args.out.name,
        args.image,
        args.depth,
        args.detections,
        cads,
        intrinsics_path=args.intrinsics,
        fov_deg=args.fov,
        depth_scale=args.depth_scale,
        depth_intrinsics_path=args.depth_intrinsics,
        size=args.size,
        normals_radius=args.normals_radius,
    )
    out = write_new_bundle(args.out, bundle)
    obs = bundle.observation
    known_depth = 100 * float(np.mean(obs.depth > 0))
    known_normals = 100 * float(np.mean(np.any(obs.normals != 0, axis=-1)))
    print(
        f"wrote {out}/: {obs.camera.width} x {obs.camera.height}, depth known at {known_depth:.0f} % and normals at "
        f"{known_normals:.0f} % of the pixels, {len(bundle.detections)} detection(s)"
    )
    print(f"align it with: multisparc align {out} --cads {args.cads} --checkpoint MODEL.pt --out DIR")
    return 0
