"""The foundation: where files live (:mod:`.paths`) and progress bars (:mod:`.progress`).
Imports nothing else from synflow."""
