"""Metric depth from one RGB image with a pretrained monocular network: Depth Anything V2, indoor metric
(fine-tuned on the synthetic Hypersim scenes, depth up to 20 m), through Hugging Face `transformers`.

    model = load_depth_model(weights=None, model_id=DEFAULT_MODEL, device="cpu")
    depth = model.predict(image (H, W, 3) uint8 RGB, size=(W', H'))  -> (H', W') float32 z-depth in metres

The image processor resizes the photo so that its shorter side is about 518 pixels (a multiple of the
backbone's 14-pixel patches, aspect ratio kept) and normalises it; the network's output is interpolated
(bicubic, the processor's own post-processing) to the requested size. Depth Anything V2's metric head is
a sigmoid times `max_depth`, so its output lies in (0, 20) m; interpolation may overshoot that range a
little: values above it are clipped to it, values at 0 or below and non-finite ones become 0 (unknown, as
in a scene bundle).

Weights: a model hub id (fetched once into the Hugging Face cache, `~/.cache/huggingface` or `$HF_HOME`, and
read from there afterwards without the network) or a local folder (`weights`: `config.json`,
`model.safetensors` and `preprocessor_config.json`, as `save_pretrained` or a download of the model's
repository writes them). `transformers` is the optional extra `multisparc[estimate]`; it is imported here,
inside the functions, and nowhere else in the package.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: The default network: the small indoor metric model, Apache-2.0, 24.8 M parameters, a 99 MB download.
DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"
#: The indoor metric models of Depth Anything V2 on the model hub: download size and licence. The Base and
#: Large ones are CC-BY-NC-4.0 (non-commercial use only), as their encoders are.
KNOWN_MODELS = {
    DEFAULT_MODEL: ("99 MB", "Apache-2.0"),
    "depth-anything/Depth-Anything-V2-Metric-Indoor-Base-hf": ("390 MB", "CC-BY-NC-4.0"),
    "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf": ("1.3 GB", "CC-BY-NC-4.0"),
}
INSTALL_HINT = "pip install 'multisparc[estimate]'"


class EstimateError(ValueError):
    """A problem with the depth network's set-up (extra missing, weights unavailable); one line for people."""


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise EstimateError(
            f"depth estimation needs the transformers package, an optional extra: {INSTALL_HINT}"
        ) from None
    return transformers


def _offline() -> bool:
    """Whether the Hugging Face libraries are told to stay off the network (read now, not at their import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class DepthModel:
    """A loaded metric depth network and its image processor; `name` says where it came from."""

    network: Any
    processor: Any
    device: str
    name: str

    def predict(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Z-depth (H', W') float32 in metres of an RGB image (H, W, 3) uint8, at `size` (W', H'; None: the
        image's own); 0 where the network gives no usable value (module docstring)."""
        import torch
        from PIL import Image

        height, width = image.shape[:2]
        target = (height, width) if size is None else (size[1], size[0])
        inputs = self.processor(images=Image.fromarray(image), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device)
        with torch.inference_mode():
            outputs = self.network(pixel_values=pixel_values)
        outputs.predicted_depth = outputs.predicted_depth.float().cpu()
        result = self.processor.post_process_depth_estimation(outputs, target_sizes=[target])
        depth = result[0]["predicted_depth"].numpy().astype(np.float32).reshape(target)
        depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
        max_depth = getattr(self.network.config, "max_depth", None)
        if max_depth:  # bicubic interpolation overshoots the head's range next to its extremes
            np.minimum(depth, float(max_depth), out=depth)
        return depth


def _load(transformers: Any, source: str, local_only: bool) -> tuple[Any, Any]:
    processor = transformers.AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    network = transformers.AutoModelForDepthEstimation.from_pretrained(source, local_files_only=local_only)
    return network, processor


def load_depth_model(weights: Path | None = None, model_id: str = DEFAULT_MODEL, device: str = "cpu") -> DepthModel:
    """The metric depth network of the local folder `weights`, else of the hub id `model_id` (from the cache
    when there, else fetched into it), on `device` ("cpu" or "cuda"), in evaluation mode. EstimateError when
    transformers is missing, the weights cannot be had, or the network does not predict metric depth."""
    transformers = _import_transformers()
    transformers.logging.set_verbosity_error()  # no progress bars or load reports in the command's output
    transformers.logging.disable_progress_bar()
    if weights is not None:
        weights = Path(weights)
        if not (weights / "config.json").is_file():
            raise EstimateError(
                f"{weights}: no config.json: --weights is a folder with config.json, model.safetensors and "
                "preprocessor_config.json (a download of the model's repository)"
            )
        try:
            network, processor = _load(transformers, str(weights), local_only=True)
        except (OSError, ValueError, KeyError) as err:
            raise EstimateError(f"{weights}: not a loadable depth model ({str(err).splitlines()[0]})") from None
        name = str(weights)
    else:
        try:
            network, processor = _load(transformers, model_id, local_only=True)  # the cache first: no network
        except OSError:
            if _offline():
                raise EstimateError(
                    f"the weights of {model_id} are not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
                    "fetch them once with the network, or give a local copy with --weights DIR"
                ) from None
            size = KNOWN_MODELS.get(model_id, ("", ""))[0]
            log.info(
                "fetching %s%s from the Hugging Face hub into its cache (once)", model_id, f" ({size})" * bool(size)
            )
            try:
                network, processor = _load(transformers, model_id, local_only=False)
            except OSError as err:
                raise EstimateError(
                    f"could not fetch the weights of {model_id} from the Hugging Face hub "
                    f"({str(err).splitlines()[0]}); without the network, download the model's repository elsewhere "
                    "and give it with --weights DIR"
                ) from None
        name = model_id
    config = network.config
    if getattr(config, "depth_estimation_type", "metric") != "metric":
        raise EstimateError(
            f"{name} predicts relative depth ({config.depth_estimation_type}), not metres: use a metric model, "
            f"e.g. {DEFAULT_MODEL}"
        )
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise EstimateError("--device cuda: no CUDA device is available to torch here; use --device cpu")
    network.to(device).eval()
    return DepthModel(network, processor, device, name)
