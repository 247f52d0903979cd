"""dfine-bench: benchmarking and evaluation for real-time DETR object detectors.

The package is organised by job:

- ``adapters``: one interface for every detector, a registry and ``create_model``.
- ``data``: COCO-format datasets, the generated stand-in dataset, label maps.
- ``evaluation``: the inference loop and the COCO engines (faster-coco-eval, pycocotools).
- ``profiling``: params, GFLOPs, latency, throughput, memory and traces per backend.
- ``records``: the versioned result record, its provenance and its storage.
- ``claims``: the D-FINE paper's claims and how each is checked.
- ``reporting``: comparison tables, plots and HTML/markdown reports.
- ``checks``: regression gates against stored baselines for CI.
- ``config``: the Hydra structured-config schema; ``cli``: the ``dfine-bench`` command.
"""

from __future__ import annotations

__version__ = "0.1.0"
