#!/usr/bin/env python3
"""Benchmark of the ALSTER 2D encoder (Encoder2D, EfficientNet-Lite0 DeepLabV3+) on the CPU.

    python bench/bench_encoder2d.py [--out build/bench] [--runs 30] [--quick]

Batch 1, eval mode, ``torch.inference_mode``, 2 threads (``OMP_WAIT_POLICY=PASSIVE``),
RGB-D-N input from ``Encoder2D.prepare_input``, pretrained weights. Every figure is the
median over ``--runs`` timed runs after warm-up; the configurations of one table are timed
round-robin (one run of each in turn) so that they see the same machine load.

1. Latency at 320x240 and 640x480 of the module as trained (``eval()``) and of its
   inference copy (``fused()``: batch norms folded into the convolutions), plus where the
   time goes: backbone only, up to the stride-4 outputs (``forward_stride4``), full
   ``forward`` (with the bilinear upsampling of features and logits to input size).
2. Design alternatives at 320x240 (fused): ASPP/decoder width 128 vs 256,
   depthwise-separable vs plain 3x3 convolutions, channels-last vs NCHW memory format,
   Lite1/Lite2 backbones.
3. Parameter counts: backbone / ASPP + decoder / heads (projection to D^{2D} + aux head).

Prints tables and writes ``bench_encoder2d.json`` into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from alster_mapping.nets.encoder2d import Encoder2D

BUDGET_MS_320 = 100.0  # share of the ~250 ms ALSTER step at 320x240 given to the 2D encoder


def make_input(height: int, width: int) -> torch.Tensor:
    """(1, 7, H, W) float32 RGB-D-N input of a random frame (content does not change cost)."""
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 4.0, (height, width)).astype(np.float32)
    normals = rng.normal(size=(height, width, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return Encoder2D.prepare_input(color, depth, normals)


def time_round_robin(fns: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, dict[str, float]]:
    """Median / p90 / min milliseconds of each callable, timed one run of each in turn."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for _ in range(runs):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {
        name: {"median_ms": statistics.median(t), "p90_ms": float(np.percentile(t, 90)), "min_ms": min(t), "runs": len(t)}
        for name, t in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--runs", type=int, default=30, help="timed runs per configuration (>= 20 for the report)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs, small inputs, no alternatives (a smoke run)")
    args = parser.parse_args(argv)
    sizes = [(240, 320), (480, 640)]
    if args.quick:
        args.runs, args.warmup = 3, 1
        sizes = [(64, 96)]
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    model = Encoder2D(backbone="lite0", pretrained=True).eval()
    fused = model.fused()
    counts = model.parameter_counts()
    params = {
        "backbone": counts["backbone"],
        "aspp_decoder": counts["aspp"] + counts["decoder"],
        "heads": counts["projection"] + counts["head"],
        "total": counts["total"],
        "detail": counts,
    }

    # -- 1. latency per resolution -------------------------------------------------------------
    latency = {}
    for h, w in sizes:
        x = make_input(h, w)
        xc = x.contiguous(memory_format=torch.channels_last)
        fns = {
            "eval": lambda: model(x),
            "fused": lambda: fused(x),
            "fused_backbone": lambda: fused.backbone.forward_features(xc),
            "fused_stride4": lambda: fused.forward_stride4(x),
        }
        latency[f"{w}x{h}"] = time_round_robin(fns, args.runs, args.warmup)

    # -- 2. design alternatives at 320x240 -----------------------------------------------------
    alternatives = {}
    if not args.quick:
        h, w = sizes[0]
        x = make_input(h, w)
        variants = {
            "sep128_cl (default)": dict(separable=True, aspp_channels=128, decoder_channels=128, channels_last=True),
            "sep256_cl": dict(separable=True, aspp_channels=256, decoder_channels=256, channels_last=True),
            "plain128_cl": dict(separable=False, aspp_channels=128, decoder_channels=128, channels_last=True),
            "plain256_cl": dict(separable=False, aspp_channels=256, decoder_channels=256, channels_last=True),
            "sep128_nchw": dict(separable=True, aspp_channels=128, decoder_channels=128, channels_last=False),
            "lite1 sep128_cl": dict(backbone="lite1"),
            "lite2 sep128_cl": dict(backbone="lite2"),
        }
        nets = {}
        for name, kw in variants.items():
            torch.manual_seed(0)
            net = Encoder2D(pretrained=True, **kw).eval()
            nets[name] = (net.fused(), net.parameter_counts())
        timed = time_round_robin({name: (lambda n=n: n(x)) for name, (n, _) in nets.items()}, args.runs, args.warmup)
        for name, kw in variants.items():
            c = nets[name][1]
            alternatives[name] = {**timed[name], "config": kw, "aspp_decoder_params": c["aspp"] + c["decoder"]}

    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        },
        "model": {
            "backbone": model.backbone_name,
            "output_stride": model.backbone.output_stride,
            "aspp_rates": list(model.aspp.rates),
            "aspp_channels": model.aspp.branches[0][0].out_channels,
            "decoder_channels": model.projection.in_channels,
            "feature_dim": model.feature_dim,
            "num_classes": model.num_classes,
            "channels_last": model.channels_last,
        },
        "budget_ms_320x240": BUDGET_MS_320,
        "latency_ms": latency,
        "alternatives_320x240_fused": alternatives,
        "parameters": params,
        "quick": args.quick,
        "command": "python bench/bench_encoder2d.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / "bench_encoder2d.json"
    out_file.write_text(json.dumps(result, indent=2))

    print(f"Encoder2D lite0, batch 1, {torch.get_num_threads()} threads, median of {args.runs} runs (p90) [ms]")
    header = f"{'input':<9} {'eval()':>15} {'fused()':>15} {'backbone':>15} {'to stride 4':>15} {'upsampling':>11}"
    print(header)
    for res, r in latency.items():
        up = r["fused"]["median_ms"] - r["fused_stride4"]["median_ms"]
        cells = [f"{r[k]['median_ms']:.1f} ({r[k]['p90_ms']:.1f})" for k in ("eval", "fused", "fused_backbone", "fused_stride4")]
        print(f"{res:<9} " + " ".join(f"{c:>15}" for c in cells) + f" {up:>11.1f}")
    if alternatives:
        print("\nalternatives at 320x240 (fused) [ms]")
        print(f"{'variant':<22} {'median':>8} {'p90':>8} {'ASPP+decoder params':>20}")
        for name, r in alternatives.items():
            print(f"{name:<22} {r['median_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['aspp_decoder_params']:>20,}")
    print(f"\nparameters: backbone {params['backbone']:,} / ASPP+decoder {params['aspp_decoder']:,} / "
          f"heads {params['heads']:,} / total {params['total']:,}")
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
