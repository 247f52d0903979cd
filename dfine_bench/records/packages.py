"""The packages whose versions a record's environment carries.

One list for everyone who reads them: the environment capture (``records/environment.py``), a
baseline's provenance (``checks/baseline.py``) and a report's environment table
(``reporting/provenance.py``). Importing it loads nothing.
"""

from __future__ import annotations

#: Distributions recorded with their version (None where not installed).
OPTIONAL_PACKAGES = (
    "transformers",
    "onnxruntime",
    "onnx",
    "tensorrt",
    "openvino",
    "faster-coco-eval",
    "pycocotools",
    "hydra-core",
    "calflops",
    "ultralytics",
    "numpy",
    "pandas",
)


def version_key(package: str) -> str:
    """The environment key of a package's version (``faster-coco-eval`` -> ``faster_coco_eval``)."""
    return package.replace("-", "_")


#: The environment keys that hold a package version (Python and torch first).
VERSION_KEYS = ("python", "torch", "dfine_bench", *(version_key(p) for p in OPTIONAL_PACKAGES))
