"""The small core every layer imports from (models, lbc, theorem, analysis, data): the linear algebra of history-
dependent systems (:mod:`wavezoo.core.operators`) and the paper's sign accuracy (:mod:`wavezoo.core.accuracy`).
It imports nothing else of wavezoo but :mod:`wavezoo.errors`."""
