"""The pruning core: masks on any ``nn.Module``, the scorers, exact top-k selection, the
schedules and the pruning loop, with the diagnostics that warn when scores mean nothing,
and saving pruned models. It imports nothing from the other layers of synflow.

| module          | concern                                                                   |
|-----------------|---------------------------------------------------------------------------|
| masks           | which layers take a mask (pruned, left dense, refused); mask dicts        |
| masked          | one masked layer: ``weight = weight_orig * weight_mask``                  |
| counts          | mask dicts counted: kept weights, layer-collapse (its warning), compression |
| paths           | input-output paths through the kept weights; the warning when none is left |
| scorers/        | one function per method, registered in ``SCORERS``                        |
| scoring         | :func:`compute_scores`: one scoring pass; the checks of a call            |
| selection       | exact top-k, global or per layer: :func:`select`                          |
| schedules       | the densities of the iterative loop                                       |
| loop            | :func:`prune`, :func:`prune_through`: score, keep, repeat                 |
| diagnostics     | ``ScoreWarning``, ``CompressionWarning``: empty scores, unmet compression |
| saving, files   | pruned models to and from files, atomically                               |
| checks          | argument checks (one rule for numbers), once per public call              |
| stack           | where warnings point: the first frame outside synflow                     |
"""
