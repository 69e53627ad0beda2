"""The pruning core: masks on any ``nn.Module``, the scorers, exact top-k selection, the
schedules and the pruning loop, with the diagnostics that warn when scores mean nothing,
and saving pruned models. It imports nothing from the other layers of synflow.

| module          | concern                                                        |
|-----------------|----------------------------------------------------------------|
| masks           | ``weight_orig * weight_mask`` layers, mask dicts and their counts |
| scorers/        | one function per method, registered in ``SCORERS``             |
| scoring         | :func:`compute_scores`: one scoring pass, its checks           |
| selection       | exact top-k, global or per layer: :func:`select`               |
| schedules       | the densities of the iterative loop                            |
| loop            | :func:`prune`, :func:`prune_through`: score, keep, repeat        |
| diagnostics     | :class:`ScoreWarning`: scores that carry no information        |
| saving, files   | pruned models to and from files, atomically                    |
| checks          | argument checks shared by the public functions                 |
"""
