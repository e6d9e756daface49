#!/usr/bin/env python3
"""The native peer of the benchmarks: CLIP Surgery in PyTorch, timed on the CPU.

The computation is the reference port of the official code (``tests/reference/make_fixtures.py``:
``SurgeryViT``, ``prompt_ensemble``) — the official ``CLIPSurgery`` model operation by operation —
on a full-size random-init ViT-B/16 (``transformers.CLIPModel``, the shapes of
``openai/clip-vit-base-patch16``; timings do not depend on the weights' values), fp32,
``torch.set_num_threads(N)``.

    target/refvenv/bin/python bench/torch_peer.py --threads 2 --runs 5 > torch.json

Prints one JSON object: median and all run times in seconds for the surgery image encode at 224
and 512 px and the 85-prompt ensemble of one class — the workloads of clip-cli's criterion bench
(``cargo bench -p clip-cli --bench surgery``), to run beside it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
from make_fixtures import SurgeryViT, prompt_ensemble  # noqa: E402

torch.set_grad_enabled(False)


def vit_b_16() -> CLIPModel:
    text = dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12,
                max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu")
    vision = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                  image_size=224, patch_size=16, hidden_act="quick_gelu")
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=512,
                        attn_implementation="eager")
    torch.manual_seed(0)
    return CLIPModel(config).eval()


def timed(runs: int, work) -> dict:
    work()  # warm-up: allocations, thread pool
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "runs_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = vit_b_16()
    vit = SurgeryViT(model)
    result = {"torch": torch.__version__, "threads": args.threads}
    for side in (224, 512):
        pixels = torch.randn(1, 3, side, side)
        result[f"surgery_image_encode_{side}"] = timed(args.runs, lambda: vit.features(pixels, surgery=True))
    result["prompt_ensemble_85_one_class"] = timed(max(args.runs // 2, 3), lambda: prompt_ensemble(model, ["cat"]))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
