"""The recurrence machinery and its algebra, which every layer imports from (models, constructions, analysis, data):
the linear algebra of history-dependent systems (:mod:`wavezoo.core.operators`, :mod:`wavezoo.core.lbc_algebra`),
the one linear-boundary solver (:mod:`wavezoo.core.linear_boundary`), the traveling-wave step
(:mod:`wavezoo.core.waves`) and the scans of the sequential recurrences with their fused Triton kernels
(:mod:`wavezoo.core.circular`, :mod:`wavezoo.core.wave_scan_triton`, :mod:`wavezoo.core.sbc_scan_triton`). It holds
no task data and no metrics, and imports nothing else of wavezoo but :mod:`wavezoo.errors`."""
