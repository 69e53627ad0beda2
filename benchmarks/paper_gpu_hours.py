"""Estimated GPU-hours of each training notebook at a profile (default: paper), by FLOP count.

    python benchmarks/paper_gpu_hours.py [--profile paper] [--tflops 30 60]

For every run of ``synflow.experiments.sweeps.configs(notebook, profile_params(notebook, profile))``:
multiply-adds per image of one forward pass, counted with hooks on every Conv2d and
Linear of the full network (dense: a masked layer costs the same on a GPU), times
2 FLOP per multiply-add, times 3 for forward + backward on each training image and
1 for each test image, per epoch, per training (an IMP run with k cycles trains k + 1
times). Pruning (at most 100 scoring passes on a few batches) is left out: well under
1 % of a run. The GPU-hours assume 30-60 TFLOP/s effective (one H100, mixed precision,
the README's assumption); they are an estimate, not a measurement. Needs no data (the
dataset sizes below are the standard splits).
"""

from __future__ import annotations

import argparse
import functools

import torch

from synflow.data import DATASETS
from synflow.experiments import profiles, sweeps
from synflow.models import build_model

# training and test images of the standard splits (Tiny ImageNet: its labelled val split)
SPLIT_SIZES = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000),
               "cifar100": (50_000, 10_000), "tinyimagenet": (100_000, 10_000)}
TRAINING_NOTEBOOKS = tuple(sweeps.BUILDERS)


@functools.cache
def macs_per_image(model: str, dataset: str, width: float) -> int:
    """Multiply-adds of one forward pass of one image (Conv2d and Linear layers)."""
    info = DATASETS[dataset]
    net = build_model(model, num_classes=info.num_classes, input_shape=info.input_shape,
                      width=width, seed=0)
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] \
                * module.kernel_size[1]
            total += output[0].numel() * per_output
        elif isinstance(module, torch.nn.Linear):
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, *info.input_shape))
    for hook in hooks:
        hook.remove()
    return total


def run_flop(config) -> float:
    """FLOP of one run: every training's epochs over its training and test images."""
    training = config.training()
    train_size, test_size = SPLIT_SIZES[config.dataset]
    classes = DATASETS[config.dataset].num_classes
    train_images = config.subset * classes if config.subset else train_size
    test_images = config.test_subset * classes if config.test_subset else test_size
    per_epoch = 2 * macs_per_image(config.model, config.dataset, config.width) \
        * (3 * train_images + test_images)
    return per_epoch * training.epochs * (config.cycles + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper", choices=profiles.PROFILES)
    parser.add_argument("--tflops", type=float, nargs=2, default=(30.0, 60.0),
                        metavar=("LOW", "HIGH"), help="effective TFLOP/s of one GPU (range)")
    args = parser.parse_args()
    low, high = sorted(args.tflops)
    print(f"profile {args.profile}; GPU-hours at {high:g}-{low:g} TFLOP/s effective")
    print(f"{'notebook':32} {'runs':>6} {'FLOP':>9} {'GPU-hours':>13} {'h/run: median':>14} "
          f"{'longest':>11}")
    grand = 0.0
    for notebook in TRAINING_NOTEBOOKS:
        runs = sweeps.configs(notebook, sweeps.profile_params(notebook, args.profile))
        flops = sorted(run_flop(config) for config in runs)
        total = sum(flops)
        grand += total
        median, longest = flops[len(flops) // 2], flops[-1]

        def hours(flop, width=0, digits=2):
            return (f"{flop / high / 1e12 / 3600:>{width}.{digits}f}-"
                    f"{flop / low / 1e12 / 3600:<{width}.{digits}f}")

        print(f"{notebook:32} {len(runs):>6} {total:>9.2e} {hours(total, 6, 0)} "
              f"{hours(median, 7)} {hours(longest, 5)}")
    print(f"{'total':32} {'':>6} {grand:>9.2e} "
          f"{grand / high / 1e12 / 3600:>6.0f}-{grand / low / 1e12 / 3600:<6.0f}")


if __name__ == "__main__":
    main()
