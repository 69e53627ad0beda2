"""Measurements behind the notebooks (conservation, layer-collapse, iteration), the
accuracy tables and the figures. Nothing in synflow imports this layer.

| module        | concern                                                              |
|---------------|----------------------------------------------------------------------|
| saliency      | dR/dp * p of every parameter; Figure 4's per-layer statistic          |
| conservation  | Theorems 1 and 2: neuron-wise flows, layer totals, slopes (Figs 3, 4)  |
| collapse      | empty layers, rho_max (Section 4)                                     |
| critical      | critical compression by search or in closed form (Figure 1's arrows)   |
| iteration     | the SynFlow loop traced: prune size / cut size (Theorem 3, Figure 7)   |
| tables        | stored runs and the paper's numbers as tidy tables (Figures 1, 5, 6)   |
| reference     | the paper's reference data, shipped in the package                    |
| plots         | the style, byte-stable saving, Figures 1 and 6                        |
| report        | each notebook's claims, saved beside its figures as a CSV             |

``input_output_paths`` and ``paths_remain`` (whether a mask still links input to output,
Section 4) live in :mod:`synflow.core.paths`, beside the check ``prune`` runs
(``warn_cut``); they are importable from here too.

The measurement functions are importable from here, as ``synflow.analysis.<name>``:

>>> from synflow import analysis
>>> round(analysis.fit_slope([10, 100, 1000], [0.1, 0.01, 0.001]), 6)
1.0
"""

from ..core.paths import input_output_paths, paths_remain
from .collapse import (
    empty_layer_counts,
    exact_critical_compression,
    first_collapse,
    kept_weight_signs,
    layer_fractions,
    max_compression,
)
from .conservation import (
    chain_layers,
    conservation_summary,
    fill_biases,
    fit_slope,
    layer_statistics,
    neuron_flows,
    neuronwise_residual,
    rescale_layer,
    total_spread,
    with_activation,
)
from .critical import (
    Critical,
    critical_compression,
    critical_table,
    find_critical,
    iterations_table,
    measured_critical,
)
from .iteration import (
    Step,
    collapse_expected,
    iterative_masks,
    prune_size_ratio,
    single_removal_iterations,
    synflow_iterations,
)
from .saliency import (
    layer_averages,
    loss_saliency,
    parameter_scores,
    saliency,
    synflow_saliency,
    weight_scores,
)

__all__ = [
    "Critical",
    "Step",
    "chain_layers",
    "collapse_expected",
    "conservation_summary",
    "critical_compression",
    "critical_table",
    "empty_layer_counts",
    "exact_critical_compression",
    "fill_biases",
    "find_critical",
    "first_collapse",
    "fit_slope",
    "input_output_paths",
    "iterations_table",
    "iterative_masks",
    "kept_weight_signs",
    "layer_averages",
    "layer_fractions",
    "layer_statistics",
    "loss_saliency",
    "max_compression",
    "measured_critical",
    "neuron_flows",
    "neuronwise_residual",
    "parameter_scores",
    "paths_remain",
    "prune_size_ratio",
    "rescale_layer",
    "saliency",
    "single_removal_iterations",
    "synflow_iterations",
    "synflow_saliency",
    "total_spread",
    "weight_scores",
    "with_activation",
]
