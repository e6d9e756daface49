#!/usr/bin/env python3
"""The browser bench's peer model: CLIP's plain vision forward as ONNX, fp32 and int8.

Reads a ``CLIPModel`` directory (``config.json`` + ``model.safetensors``; ``clip-surgery random``
writes one with random weights) and writes, into the output directory:

- ``vision_fp32.onnx``: ``transformers``' ``CLIPVisionModelWithProjection`` — pixels
  ``[1, 3, S, S]`` to the projected image embedding — with eager attention (plain MatMul and
  Softmax, which onnxruntime-web fuses itself), exported by ``torch.onnx`` at a fixed size;
- ``vision_int8.onnx``: the same, quantized by onnxruntime's ``quantize_dynamic`` (int8 weights,
  activations quantized per call: how int8 CLIP models for onnxruntime-web are usually made);
- ``export.json``: versions, sizes, and the largest difference between PyTorch and onnxruntime
  (CPU) on one random input, for both files.

    target/benchvenv/bin/python bench/onnx_export.py --model DIR --out DIR [--size 224]

Run by ``cargo xtask bench-web``; the versions are pinned in ``bench/requirements.txt``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import transformers
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import CLIPVisionModelWithProjection


class ImageEmbeds(torch.nn.Module):
    """Pixels to the projected image embedding: one input, one output."""

    def __init__(self, model: CLIPVisionModelWithProjection) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).image_embeds


def max_abs_diff(path: Path, pixels: np.ndarray, expected: np.ndarray) -> float:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"pixel_values": pixels})
    return float(np.abs(got - expected).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="CLIPModel directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    torch.set_grad_enabled(False)
    # The text tower's weights are in the file too and go unused: not worth a warning.
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    model, info = CLIPVisionModelWithProjection.from_pretrained(
        args.model, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
    )
    if info["missing_keys"]:
        # transformers would draw them itself: not the weights the app runs.
        raise SystemExit(f"{args.model} lacks {sorted(info['missing_keys'])[:5]}…")
    model.eval()
    wrapped = ImageEmbeds(model).eval()
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, args.size, args.size, generator=generator)
    expected = wrapped(pixels).numpy()

    fp32 = args.out / "vision_fp32.onnx"
    int8 = args.out / "vision_int8.onnx"
    torch.onnx.export(
        wrapped,
        (pixels,),
        str(fp32),
        input_names=["pixel_values"],
        output_names=["image_embeds"],
        opset_version=18,
        dynamo=False,
    )
    # One file, no external data (the browser fetches one URL).
    onnx.save(onnx.load(str(fp32)), str(fp32))
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)

    report = {
        "size": args.size,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "files": {},
    }
    for path in (fp32, int8):
        report["files"][path.name] = {
            "bytes": path.stat().st_size,
            "max_abs_diff_vs_torch": max_abs_diff(path, pixels.numpy(), expected),
        }
    (args.out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
