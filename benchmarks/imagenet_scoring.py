"""Time and peak memory of one scoring pass on the ImageNet VGG-19 (Figures 2-4 and 7).

Each measurement runs in a fresh process (so its peak resident memory, ru_maxrss, is
its own): SNIP and GraSP on ``--images`` pruning images (synflow.data.imagenet, ImageNet or
the CIFAR-10 stand-in, in batches of ``--batch-size``), and one SynFlow pass in float32
and in float64. Prints seconds and peak GiB per case, and GraSP's seconds per image.

    OMP_NUM_THREADS=2 python benchmarks/imagenet_scoring.py [--images 10 100]
        [--batch-size 10] [--width 1.0] [--size 224] [--cases snip grasp synflow32 synflow64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def one(case: str, images: int, batch_size: int, width: float, size: int) -> dict:
    import resource

    import torch

    import synflow
    from synflow.core.scorers import synflow as pathscores
    from synflow.data.imagenet import imagenet_pruning_batches

    shape = (3, size, size)
    model = synflow.build_model("vgg19_imagenet", num_classes=1000, input_shape=shape,
                                width=width, seed=0)
    layers = synflow.prunable_layers(model)
    weights = {name: layer.weight.detach() for name, layer in layers.items()}
    start = time.perf_counter()
    if case in ("snip", "grasp"):
        per_class = max(1, images // 10)
        batches, _ = imagenet_pruning_batches(per_class=per_class, image_size=size,
                                              batch_size=batch_size, source="cifar10")
        start = time.perf_counter()
        synflow.compute_scores(model, case, data=batches, input_shape=shape)
    else:
        dtype = torch.float32 if case == "synflow32" else torch.float64
        R, _ = pathscores.synflow_pass(model, layers, weights, shape, dtype)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    out = {"case": case, "images": images if case in ("snip", "grasp") else 0,
           "batch_size": batch_size, "seconds": round(seconds, 1), "peak_gib": round(peak, 2),
           "threads": torch.get_num_threads()}
    if case.startswith("synflow"):
        out["R_SF"] = float(R)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--cases", nargs="+", default=["synflow32", "synflow64", "snip", "grasp"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        case, images = args.one.split(":")
        print(json.dumps(one(case, int(images), args.batch_size, args.width, args.size)))
        return
    for case in args.cases:
        for images in args.images if case in ("snip", "grasp") else [0]:
            command = [sys.executable, __file__, "--one", f"{case}:{images}",
                       "--batch-size", str(args.batch_size), "--width", str(args.width),
                       "--size", str(args.size)]
            result = subprocess.run(command, check=False, capture_output=True, text=True)
            if result.returncode:
                print(f"{case} {images}: failed (rc {result.returncode})\n{result.stderr[-2000:]}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            if row["images"]:
                row["seconds_per_image"] = round(row["seconds"] / row["images"], 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
