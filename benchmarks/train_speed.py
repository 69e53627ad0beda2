"""Training speed: our masked training step and data pipeline against plain PyTorch.

For CIFAR VGG-16 (BN) at width 1/4 and ResNet-20, on the CPU (and on CUDA when
available), prints

1. images/s of ``synflow.training``'s training step on a pruned (masked) model
   against a plain dense PyTorch loop (same model, same batch, same SGD; on
   CUDA both channels-last under bf16 autocast). Goal: masked/dense time <= 1.05.
2. the time of an epoch fed by ``synflow.data.Batches`` (shuffle, batched crop +
   flip, normalisation on the training device) against the same epoch fed by
   pre-loaded, pre-normalised tensors. Goal: pipeline/pre-loaded <= 1.1.

Timings are the best of ``--repeats`` alternating runs. The epoch uses
``--images`` CIFAR-10 training images (a class-balanced subset read from the
data root; random images if CIFAR-10 is absent).

    SYNFLOW_DATA=../shared/data python benchmarks/train_speed.py [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import synflow
from synflow import data
from synflow.training import loop as train_loop
from synflow.training import presets

MODELS = (("vgg16_bn", 0.25), ("resnet20", 1.0))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def build(name, width, device, pruned):
    model = synflow.build_model(name, width=width, seed=0)
    if pruned:
        synflow.prune(model, "magnitude", 10)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    return model.to(device=device, memory_format=memory_format)


def dense_loop(model, batches, config, device):
    """A plain PyTorch training loop: the reference."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
        weight_decay=config.weight_decay,
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None

    def run():
        model.train()
        for inputs, targets in batches:
            optimizer.zero_grad(set_to_none=True)
            if autocast is not None:
                with autocast:
                    loss = F.cross_entropy(model(inputs), targets)
            else:
                loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()

    return run


def ours(model, batches, config, device):
    optimizer, _ = train_loop.optimizer_for(model, config)
    return lambda: train_loop.train_epoch(model, batches, optimizer, device)


def best_of(functions: dict, device, repeats: int) -> dict:
    best = dict.fromkeys(functions, float("inf"))
    for fn in functions.values():
        fn()  # warm-up (cudnn autotuning, allocator)
    for _ in range(repeats):
        for key, fn in functions.items():
            best[key] = min(best[key], timed(fn, device))
    return best


def epoch_images(count: int) -> data.Images:
    try:
        return data.load("cifar10", "train", per_class=count // 10, seed=0, download=False)
    except (FileNotFoundError, ValueError) as error:
        print(f"  (CIFAR-10 not found: {error.__class__.__name__}; using random images)")
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
        return data.Images(images, torch.arange(count) % 10, tuple(map(str, range(10))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed run")
    parser.add_argument("--images", type=int, default=1280, help="images in the timed epoch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", action="append", help="name:width (default: both)")
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    info = data.DATASETS["cifar10"]
    split = epoch_images(args.images)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, batch {args.batch}")
    for device in map(torch.device, devices):
        memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        models = [(m.split(":")[0], float(m.split(":")[1])) for m in args.model or []]
        for name, width in models or MODELS:
            config = presets.preset(name, "cifar10")
            label = f"{name} width {width:g} on {device.type}"

            # 1. one fixed batch, many steps: our masked step vs a plain dense loop
            inputs, targets = next(iter(data.Batches(
                split, info, batch_size=args.batch, augment=True, device=device,
                memory_format=memory_format,
            )))
            steps = [(inputs, targets)] * args.steps
            masked = build(name, width, device, pruned=True)
            dense = build(name, width, device, pruned=False)
            times = best_of(
                {"dense": dense_loop(dense, steps, config, device),
                 "masked": ours(masked, steps, config, device)},
                device, args.repeats,
            )
            images = args.steps * args.batch
            ratio = times["masked"] / times["dense"]
            print(
                f"{label}: step  dense {images / times['dense']:8.0f} img/s, "
                f"ours (masked, compression 10) {images / times['masked']:8.0f} img/s, "
                f"masked/dense time {ratio:.3f} (goal <= 1.05: {'met' if ratio <= 1.05 else 'MISSED'})"
            )

            # 2. one epoch: our data pipeline vs pre-loaded, pre-normalised tensors
            pipeline = data.Batches(
                split, info, batch_size=args.batch, shuffle=True, augment=True, seed=0,
                device=device, memory_format=memory_format,
            )
            preloaded = [(x.clone(), y.clone()) for x, y in pipeline]
            times = best_of(
                {"preloaded": ours(masked, preloaded, config, device),
                 "pipeline": ours(masked, pipeline, config, device)},
                device, args.repeats,
            )
            ratio = times["pipeline"] / times["preloaded"]
            alone = best_of({"alone": lambda batches=pipeline: list(batches)}, device, args.repeats)
            print(
                f"{label}: epoch of {len(split)} images  pre-loaded {times['preloaded']:.2f} s, "
                f"our pipeline {times['pipeline']:.2f} s, pipeline/pre-loaded {ratio:.3f} "
                f"(goal <= 1.1: {'met' if ratio <= 1.1 else 'MISSED'}); "
                f"the pipeline alone {alone['alone']:.3f} s"
            )


if __name__ == "__main__":
    main()
