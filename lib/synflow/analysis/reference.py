"""The paper's reference data, shipped in the package (``synflow/analysis/reference/``).

``fig{1,2,3,4,6,7}_reference.csv`` hold the authors' plotted numbers: Figures 1 and 6
from their released runs, Figures 2, 3, 4 and 7 recovered from the vector PDFs of their
figures (``tools/extract_paper_figures.py``; provenance and precision in the repository's
``paper/README.md``). $SYNFLOW_PAPER may name another folder holding these files.

>>> from synflow.analysis.reference import paper_reference
>>> paper_reference("fig6_reference.csv").name
'fig6_reference.csv'
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..experiments.sweeps import dataset_model

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
# the authors' model names in the reference CSVs -> ours. Their "WRN-18" ignores its
# width and is exactly a ResNet-18; ours ("wrn18_2") is the real WRN-18-2.
REFERENCE_MODELS = {"wide_resnet18": "wrn18_2"}


def paper_dir() -> Path:
    """The folder of the reference CSVs: $SYNFLOW_PAPER, else the package's copy.

    >>> (paper_dir() / "fig6_reference.csv").is_file()
    True
    """
    value = os.environ.get("SYNFLOW_PAPER")
    return Path(value).expanduser().resolve() if value else REFERENCE_DIR


def paper_reference(name: str) -> Path:
    """A file of the paper's reference data (e.g. "fig6_reference.csv"), from :func:`paper_dir`.

    Raises:
        FileNotFoundError: naming the file and the folder looked in.

    >>> paper_reference("fig1_reference.csv").name
    'fig1_reference.csv'
    >>> paper_reference("fig99.csv")
    Traceback (most recent call last):
        ...
    FileNotFoundError: reference file 'fig99.csv' not found in ...
    """
    path = paper_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"reference file {name!r} not found in {path.parent}; the package ships "
            f"{REFERENCE_DIR} (see paper/README.md in the repository), and SYNFLOW_PAPER may "
            "name another folder holding the paper's reference CSVs"
        )
    return path


def load_fig6_reference(path=None, models: dict[str, str] = REFERENCE_MODELS) -> pd.DataFrame:
    """The authors' Figure 6 numbers: dataset, model, width (1), method, run,
    log10_compression, best_top1 (their plotted best-epoch accuracy). Model
    names are translated by ``models`` (their "wide_resnet18" -> "wrn18_2"), then to
    the network they stand for on each dataset (:func:`dataset_model`: their Tiny
    ImageNet "vgg16_bn" is "vgg16_bn_tiny").

    >>> table = load_fig6_reference()
    >>> sorted(table["dataset"].unique())
    ['cifar10', 'cifar100', 'tinyimagenet']
    """
    table = pd.read_csv(path or paper_reference("fig6_reference.csv"))
    table["model"] = [dataset_model(model, dataset) for model, dataset in
                      zip(table["model"].replace(models), table["dataset"])]
    return table.rename(columns={"pruner": "method", "top1_best_epoch": "best_top1"}).assign(
        width=1.0
    )[["dataset", "model", "width", "method", "run", "log10_compression", "best_top1"]]


def load_fig1_reference(path=None) -> pd.DataFrame:
    """The authors' Figure 1 numbers (VGG-16 on CIFAR-100): method, run,
    log10_compression, best_top1, final_top1, empty_layers.

    >>> table = load_fig1_reference()
    >>> list(table.columns)
    ['run', 'method', 'log10_compression', 'best_top1', 'final_top1', 'empty_layers', 'dataset', 'model', 'width']
    """
    table = pd.read_csv(path or paper_reference("fig1_reference.csv"))
    table = table.rename(
        columns={
            "pruner": "method",
            "top1_best_epoch": "best_top1",
            "top1_final_epoch": "final_top1",
        }
    )
    return table.assign(dataset="cifar100", model="vgg16_bn", width=1.0)


def authors_critical(fig1: pd.DataFrame | None = None) -> pd.Series:
    """The authors' data-free collapse points: per method, the largest log10 compression
    of their Figure 1 runs (``fig1``, default :func:`load_fig1_reference`: VGG-16 on
    CIFAR-100) at which none of their runs has an empty layer. Used by notebooks 02, 04.

    >>> float(authors_critical()["synflow"])
    5.75
    """
    fig1 = load_fig1_reference() if fig1 is None else fig1
    worst = fig1.groupby(["method", "log10_compression"])["empty_layers"].max()
    return worst[worst == 0].reset_index().groupby("method")["log10_compression"].max()
