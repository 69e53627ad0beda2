"""The names of synflow 0.1, kept working for one release with a DeprecationWarning.

0.2 split the package into layers (``synflow.core``, ``.models``, ``.data``,
``.training``, ``.experiments``, ``.analysis``, ``.utils``). An old module path such as
``synflow.masks`` or ``synflow.store`` still imports: it is a stand-in module that warns
once and looks every name up in the new modules listed in :data:`MODULES`, in order. The
old top-level names that are no longer public (``synflow.shuffle_masks``, ...) are in
:data:`ATTRIBUTES`. Both tables go in the next release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

from .core.stack import outside_stacklevel

# old module -> the new modules that hold its names, searched in order
MODULES: dict[str, tuple[str, ...]] = {
    "synflow.masks": ("synflow.core.masks", "synflow.models.inits"),
    "synflow.selection": ("synflow.core.selection",),
    "synflow.schedules": ("synflow.core.schedules",),
    "synflow.pruning": ("synflow.core.loop", "synflow.core.schedules", "synflow.core.selection"),
    "synflow.scores": ("synflow.core.scoring", "synflow.core.scorers", "synflow.core.scorers.basic",
                       "synflow.core.scorers.gradient", "synflow.core.scorers.synflow",
                       "synflow.core.scorers.functional", "synflow.core.scorers.inputs",
                       "synflow.core.diagnostics"),
    "synflow.scoring": ("synflow.core.scorers.functional", "synflow.core.scorers.inputs"),
    "synflow.pathscores": ("synflow.core.scorers.synflow",),
    "synflow.baselines": ("synflow.core.scorers.erk",),
    "synflow.diagnostics": ("synflow.core.diagnostics",),
    "synflow.saving": ("synflow.core.saving", "synflow.core.files"),
    "synflow.networks": ("synflow.models.networks",),
    "synflow.inits": ("synflow.models.inits",),
    "synflow.imagenet": ("synflow.data.imagenet",),
    "synflow.train": ("synflow.training.presets", "synflow.training.loop"),
    "synflow.checkpoints": ("synflow.training.checkpoints",),
    "synflow.runconfig": ("synflow.experiments.runconfig",),
    "synflow.execution": ("synflow.experiments.execution",),
    "synflow.store": ("synflow.experiments.store", "synflow.experiments.results",
                      "synflow.experiments.runconfig"),
    "synflow.claims": ("synflow.experiments.claims", "synflow.experiments.holders"),
    "synflow.launch": ("synflow.experiments.launch", "synflow.experiments.worker"),
    "synflow.status": ("synflow.experiments.status",),
    "synflow.sweeps": ("synflow.experiments.sweeps", "synflow.experiments.profiles"),
    "synflow.layer_average": ("synflow.analysis.saliency",),
    "synflow.figures": ("synflow.analysis.tables", "synflow.analysis.plots",
                        "synflow.analysis.critical", "synflow.analysis.collapse",
                        "synflow.analysis.reference", "synflow.experiments.sweeps"),
    "synflow.plotting": ("synflow.analysis.plots",),
    "synflow.paths": ("synflow.utils.paths", "synflow.analysis.reference"),
}

# old top-level names that are no longer public -> "module:name"
ATTRIBUTES: dict[str, str] = {
    "SCHEDULES": "synflow.core.schedules:SCHEDULES",
    "SCOPES": "synflow.core.selection:SCOPES",
    "density_after": "synflow.core.schedules:density_after",
    "schedule_densities": "synflow.core.schedules:schedule_densities",
    "effective_weight": "synflow.core.masks:effective_weight",
    "shuffle_masks": "synflow.core.masks:shuffle_masks",
    "reinitialize_kept": "synflow.models.inits:reinitialize_kept",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated since synflow 0.2 and goes in the next release: "
                  f"use {new}", DeprecationWarning, stacklevel=outside_stacklevel())


class OldModule(types.ModuleType):
    """A stand-in for a 0.1 module: every name is looked up in its new modules."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        for target in MODULES[self.__name__]:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (deprecated) has no attribute {name!r}; "
                             f"its names moved to {', '.join(MODULES[self.__name__])}")

    def __dir__(self) -> list[str]:
        return sorted({n for t in MODULES[self.__name__]
                       for n in dir(importlib.import_module(t)) if not n.startswith("_")})

    def __call__(self, *args, **kwargs):  # synflow.scores(...), deprecated since 0.1
        if self.__name__ != "synflow.scores":
            raise TypeError(f"module {self.__name__!r} is not callable")
        _warn("calling synflow.scores(...)", "synflow.compute_scores(...)")
        return importlib.import_module("synflow.core.scoring").compute_scores(*args, **kwargs)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as an :class:`OldModule`, with a DeprecationWarning."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MODULES else None

    def create_module(self, spec):
        _warn(spec.name, " or ".join(MODULES[spec.name][:2]))
        return OldModule(spec.name)

    def exec_module(self, module) -> None:
        module.__doc__ = f"Deprecated: the names of {module.__name__} moved to " + ", ".join(
            MODULES[module.__name__])


def install() -> None:
    """Let the old module paths import (once per interpreter)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())


def attribute(name: str):
    """An old top-level name of ``synflow``: a moved function, constant or module."""
    if name in ATTRIBUTES:
        module, _, attr = ATTRIBUTES[name].partition(":")
        _warn(f"synflow.{name}", f"{module}.{attr}")
        return getattr(importlib.import_module(module), attr)
    if f"synflow.{name}" in MODULES:
        return importlib.import_module(f"synflow.{name}")
    raise AttributeError(f"module 'synflow' has no attribute {name!r}")
