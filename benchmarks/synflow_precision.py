"""SynFlow's opt-in float32 pass against the float64 oracle (the default) on CIFAR VGG-16(-BN).

For each of 10 initialisations (ours, seeds 0-4; an independent Kaiming-normal
fan-in draw from another generator, seeds 2-4; PyTorch's default init, seeds 0-1)
prune to rho_max / 2 with 100 iterations twice: with ``precision="float32"`` (each
pass in float32 unless R leaves float32's safe range) and with the default, every pass
in float64. Prints per init the empty layers of both, how many weights' masks differ,
how many of the float32 run's passes fell back to float64, and both timings.

    python benchmarks/synflow_precision.py [--model vgg16_bn] [--width 1] [--inits ours:0 ...]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import synflow
from synflow.analysis import max_compression
from synflow.core.scorers import synflow as pathscores

INITS = ["ours:0", "ours:1", "ours:2", "ours:3", "ours:4",
         "independent:2", "independent:3", "independent:4", "default:0", "default:1"]


def build(model_name: str, width: float, init: str):
    kind, seed = init.split(":")
    seed = int(seed)
    model = synflow.build_model(model_name, width=width, seed=seed if kind == "ours" else 0)
    layers = synflow.prunable_layers(model).values()
    with torch.no_grad():
        if kind == "independent":  # same architecture and law, another generator
            generator = torch.Generator().manual_seed(seed)
            for m in layers:
                m.weight.normal_(0, math.sqrt(2 / m.weight[0].numel()), generator=generator)
        elif kind == "default":  # PyTorch's own reset_parameters (Kaiming uniform, a=sqrt(5))
            torch.manual_seed(seed)
            for m in layers:
                m.reset_parameters()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16_bn")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inits", nargs="+", default=INITS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (3, 32, 32)
    passes = []
    original = pathscores.synflow_pass

    def counting(model, layers, weights, input_shape, dtype, power=1):
        passes.append(dtype)
        return original(model, layers, weights, input_shape, dtype, power)

    print("init            empty(f32) empty(f64) differing  f64-passes  f32-s  f64-s")
    for init in args.inits:
        rho = max_compression(build(args.model, args.width, init)) / 2
        densities = synflow.core.schedules.schedule_densities(rho, args.iterations, "exponential")
        passes.clear()
        pathscores.synflow_pass = counting
        try:
            start = time.perf_counter()
            auto = synflow.prune_through(build(args.model, args.width, init), "synflow",
                                         densities, input_shape=shape, precision="float32")
            auto_s = time.perf_counter() - start
        finally:
            pathscores.synflow_pass = original
        f64_passes = sum(d == torch.float64 for d in passes)
        start = time.perf_counter()
        exact = synflow.prune_through(build(args.model, args.width, init), "synflow",
                                      densities, input_shape=shape)
        f64_s = time.perf_counter() - start
        differing = sum(int((auto[k] != exact[k]).sum()) for k in auto)
        print(f"{init:15} {len(synflow.empty_layers(auto)):>11} "
              f"{len(synflow.empty_layers(exact)):>10} {differing:>9} {f64_passes:>11} "
              f"{auto_s:>7.1f} {f64_s:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
