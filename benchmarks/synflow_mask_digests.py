"""Digests of SynFlow's masks for the laptop configurations of notebooks 02-06.

Prints one JSON object {config: sha256 of the masks} so that two versions of the
library can be compared (pruning only, no training): run it before and after a change
to SynFlow's scoring and diff the outputs. ``--out FILE`` writes the JSON atomically.

    python benchmarks/synflow_mask_digests.py --out /tmp/after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile

import torch

import synflow

# (model, width, seeds, compressions, iterations): notebooks 02-04 (VGG-16-BN 1/8,
# 10^0.5..10^3, 100 iterations, seeds 0-2) and 05-06 (VGG-11-BN 1/8; 06 also single-shot
# and the collapse compressions 10^3, 10^4)
CONFIGS = [
    ("vgg16_bn", 0.125, (0, 1, 2), [10 ** (k / 2) for k in range(1, 7)], (100,)),
    ("vgg11_bn", 0.125, (0, 1), [10.0, 100.0, 1000.0, 10000.0], (1, 100)),
]


def digest(masks) -> str:
    h = hashlib.sha256()
    for name, mask in masks.items():
        h.update(name.encode())
        h.update(mask.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the JSON here (atomically)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {}
    for model_name, width, seeds, compressions, iteration_counts in CONFIGS:
        for seed in seeds:
            for compression in compressions:
                for iterations in iteration_counts:
                    model = synflow.build_model(model_name, width=width, seed=seed)
                    masks = synflow.prune(model, "synflow", compression, iterations=iterations,
                                          input_shape=(3, 32, 32))
                    key = f"{model_name}/w{width}/seed{seed}/rho{compression:.4g}/it{iterations}"
                    result[key] = digest(masks)
                    print(key, result[key], synflow.empty_layers(masks), flush=True)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.out:
        folder = os.path.dirname(os.path.abspath(args.out))
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False) as f:
            f.write(text)
        os.replace(f.name, args.out)
    else:
        print(text)


if __name__ == "__main__":
    main()
