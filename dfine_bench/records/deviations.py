"""``Deviation``: one way a measurement differs from the paper's protocol, as data.

Records list their deviations in ``Setup.deviations`` as ``Deviation(code, expected, actual)``;
``.text`` is the sentence reports show. Code that decides anything (claims, gates) matches on
``code`` (one of ``CODES``) and never parses ``text``. Records of schema version 1 stored the
sentences alone; ``from_legacy`` maps the sentences version 1 wrote back to codes and keeps any
other sentence as ``Deviation("legacy", "", sentence)``.

A ``Deviation`` compares equal to its own ``text`` (and hashes like it, and ``in`` looks for words
in it), so a test or a report that looks a sentence up in a list of deviations keeps working;
equality between two deviations is on ``(code, expected, actual)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# -- codes ---------------------------------------------------------------------------------------
DEVICE = "device"  # expected: reference device ("T4"); actual: the device name
BACKEND = "backend"  # expected / actual: "<backend> <dtype>" in words ("TensorRT FP16")
BATCH_SIZE = "batch_size"
INPUT_SIZE = "input_size"  # "640x640"
TIMED = "timed"  # "model" | "model+postprocess" | "end-to-end"
INPUT_KIND = "input_kind"  # "dataset" | "fixed" | "generated"
DATASET_GENERATED = "dataset_generated"  # the generated stand-in, not COCO
ANNOTATIONS = "annotations"  # expected: official sha256; actual: the file's sha256 (or "unknown")
NUM_IMAGES = "num_images"  # expected: 5000; actual: "<dataset name> with <n> images"
COUNTED_AT = "counted_at"  # params/GFLOPs at another input size
LEGACY = "legacy"  # a version-1 sentence no code could be recovered for

#: Setup deviations of a timing record (device, backend, ...): what makes a latency not the paper's.
SETUP_CODES = (DEVICE, BACKEND, BATCH_SIZE, INPUT_SIZE, TIMED)


def _timed(expected: str, actual: str) -> str:
    wanted = {
        "model": "the model alone",
        "model+postprocess": "the deploy graph (model + top-k postprocessor)",
    }.get(expected, expected)
    return f"timed {actual}, not {wanted}"


def _input_kind(expected: str, actual: str) -> str:
    words = {"fixed": "fixed random input", "generated": "generated images"}
    wanted = "COCO images" if expected == "dataset" else f"{expected} input"
    return f"{words.get(actual, actual + ' input')}, not {wanted}"


def _num_images(expected: str, actual: str) -> str:
    return f"{actual}, not the {expected} of COCO val2017"


def _annotations(expected: str, actual: str) -> str:
    return (
        f"annotations are not COCO val2017: sha256 {actual} is not the official "
        f"instances_val2017.json's ({expected[:12]}...)"
    )


_TEXT: dict[str, Callable[[str, str], str]] = {
    DEVICE: lambda e, a: f"ran on {a}, not an NVIDIA {e}",
    BACKEND: lambda e, a: f"{a}, not {e}",
    BATCH_SIZE: lambda e, a: f"batch size {a}, not {e}",
    INPUT_SIZE: lambda e, a: f"input {a}, not {e}",
    TIMED: _timed,
    INPUT_KIND: _input_kind,
    DATASET_GENERATED: lambda e, a: f"generated stand-in dataset, not {e}",
    ANNOTATIONS: _annotations,
    NUM_IMAGES: _num_images,
    COUNTED_AT: lambda e, a: f"counted at {a}, not {e}",
    LEGACY: lambda e, a: a,
}
CODES = tuple(_TEXT)


@dataclass(frozen=True, eq=False)
class Deviation:
    """Where a measurement differs from the paper's protocol: ``code``, the paper's value, ours."""

    code: str
    expected: str
    actual: str

    @property
    def text(self) -> str:
        """The sentence for reports (an unknown code reads ``<code>: <actual>, not <expected>``)."""
        render = _TEXT.get(self.code)
        if render is None:
            return f"{self.code}: {self.actual}, not {self.expected}"
        return render(self.expected, self.actual)

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Deviation):
            return (self.code, self.expected, self.actual) == (other.code, other.expected, other.actual)
        if isinstance(other, str):
            return self.text == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.text)

    def __contains__(self, words: str) -> bool:
        """``"random input" in deviation``: a substring of its text, as for the sentences it replaced."""
        return words in self.text

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "expected": self.expected, "actual": self.actual, "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Deviation:
        return cls(code=str(d["code"]), expected=str(d.get("expected", "")), actual=str(d.get("actual", "")))


# -- reading version-1 records -------------------------------------------------------------------
_LEGACY_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Deviation]], ...] = (
    (re.compile(r"^ran on (?P<a>.+), not an NVIDIA (?P<e>.+)$"), lambda m: Deviation(DEVICE, m["e"], m["a"])),
    (re.compile(r"^batch size (?P<a>\d+), not (?P<e>\d+)$"), lambda m: Deviation(BATCH_SIZE, m["e"], m["a"])),
    (
        re.compile(r"^input (?P<a>\d+x\d+), not (?P<e>\d+x\d+)$"),
        lambda m: Deviation(INPUT_SIZE, m["e"], m["a"]),
    ),
    (
        re.compile(r"^counted at (?P<a>\d+x\d+), not (?P<e>\d+x\d+)$"),
        lambda m: Deviation(COUNTED_AT, m["e"], m["a"]),
    ),
    (re.compile(r"^timed (?P<a>\S+), not the model alone$"), lambda m: Deviation(TIMED, "model", m["a"])),
    (
        re.compile(r"^(?P<a>fixed random input|generated images), not COCO images$"),
        lambda m: Deviation(INPUT_KIND, "dataset", "fixed" if m["a"].startswith("fixed") else "generated"),
    ),
    (
        re.compile(r"^generated stand-in dataset, not (?P<e>.+)$"),
        lambda m: Deviation(DATASET_GENERATED, m["e"], "generated"),
    ),
    (
        re.compile(r"^(?P<a>.+ with \S+ images), not the (?P<e>\d+) of COCO val2017$"),
        lambda m: Deviation(NUM_IMAGES, m["e"], m["a"]),
    ),
    (re.compile(r"^(?P<a>.+), not (?P<e>TensorRT FP16)$"), lambda m: Deviation(BACKEND, m["e"], m["a"])),
)


def from_legacy(sentence: str) -> Deviation:
    """A version-1 deviation sentence as a ``Deviation`` (its code recovered where recognisable)."""
    for pattern, build in _LEGACY_PATTERNS:
        found = pattern.match(sentence)
        if found:
            return build(found)
    return Deviation(LEGACY, "", sentence)


def read_deviations(raw: Iterable[Any]) -> list[Deviation]:
    """Deviations from a record file: dicts (version 2) or sentences (version 1)."""
    out: list[Deviation] = []
    for item in raw or []:
        if isinstance(item, Deviation):
            out.append(item)
        elif isinstance(item, dict) and "code" in item:
            out.append(Deviation.from_dict(item))
        else:
            out.append(from_legacy(str(item)))
    return out
