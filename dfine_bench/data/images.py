"""Reading images the way the annotations assume, and saying so where it is not the obvious way.

Three properties of an image file change AP without a word when they are read naively:

* an EXIF orientation tag (not 1): viewers and annotation tools show the image rotated, while the
  official D-FINE code and pycocotools read the stored pixels. ``dataset.exif=ignore`` (default,
  their behaviour) reads the stored pixels, ``apply`` rotates as displayed; either way the images
  with a tag are counted and the reading is stated;
* a real size other than the ``width``/``height`` in the annotation file: boxes are in the
  annotation's frame, so AP collapses. An error naming the image and both sizes
  (``dataset.size_mismatch=warn``: a warning with a count);
* 16-bit grayscale (PIL mode ``I;16``): a plain RGB conversion clips every value above 255 to
  white; these are scaled by the type's range (value / 257) and counted.

``scan_images`` reads each image's header only (no decode; ``decode=True`` decodes too, for
training, so that a corrupt file fails before the first step rather than when a batch draws it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dfine_bench.errors import DatasetError

log = logging.getLogger("dfine_bench")

ORIENTATION_TAG = 0x0112
#: EXIF orientations that swap width and height when applied.
_TRANSPOSING = (5, 6, 7, 8)
#: Grayscale modes wider than 8 bits that PIL's RGB conversion clips (``I``: how PIL may hold a
#: 16-bit PNG); scaled by the 16-bit range.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_uint8_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(im, dtype=np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)  # 65535 -> 255, 0 -> 0
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.array(im.convert("RGB"))  # writable: consumers may hand it to torch.from_numpy


def read_image(path: Path, *, exif: str = "ignore") -> np.ndarray:
    """Decode one image file as HWC uint8 RGB; a missing or corrupt file is a ``DatasetError``.

    ``exif="apply"`` rotates by the EXIF orientation tag (as displayed); ``ignore`` keeps the
    stored pixels. 16-bit grayscale is scaled to 8 bits, never clipped.
    """
    try:
        with Image.open(path) as im:
            shown = ImageOps.exif_transpose(im) if exif == "apply" else im
            return _to_uint8_rgb(shown)
    except FileNotFoundError:
        raise DatasetError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"image {path} cannot be decoded: {exc}") from None


@dataclass(frozen=True)
class ImageReader:
    """A picklable ``read_image`` with the dataset's EXIF mode (for DataLoader workers)."""

    exif: str = "ignore"

    def __call__(self, path: Path) -> np.ndarray:
        return read_image(path, exif=self.exif)


@dataclass
class ImageScan:
    """What the headers of a dataset's images say (file names relative to the image folder)."""

    checked: int = 0
    exif_mode: str = "ignore"
    oriented: list[tuple[str, int]] = field(default_factory=list)  # (file, orientation != 1)
    mismatched: list[str] = field(default_factory=list)  # one message per image
    sixteen_bit: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per finding, for the console, the records' notes and the report."""
        out: list[str] = []
        if self.oriented:
            name, tag = self.oriented[0]
            how = (
                "rotated as displayed (dataset.exif=apply)"
                if self.exif_mode == "apply"
                else "read as stored, not rotated (dataset.exif=ignore, as the official code and "
                "pycocotools do; set dataset.exif=apply if the boxes were drawn on the displayed image)"
            )
            out.append(
                f"{len(self.oriented)} of {self.checked} images carry an EXIF orientation other than 1 "
                f"(first: {name}, orientation {tag}): {how}"
            )
        if self.sixteen_bit:
            out.append(
                f"{len(self.sixteen_bit)} of {self.checked} images are 16-bit grayscale (first: "
                f"{self.sixteen_bit[0]}): scaled to 8 bits by the 16-bit range (value / 257) and read as RGB"
            )
        if self.mismatched:
            out.append(
                f"WARNING: {len(self.mismatched)} of {self.checked} images differ in size from their "
                f"width/height in the annotation file (dataset.size_mismatch=warn; first: "
                f"{self.mismatched[0]}); boxes are in the annotation's frame, so AP on them is unreliable"
            )
        return out


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError):  # a broken EXIF block reads as no tag, as PIL's own
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _mismatch(entry: Mapping[str, Any], size: tuple[int, int], tag: int, exif: str, annotations: Path) -> str:
    """The size-mismatch message of one image (size: the (width, height) as read)."""
    w, h = int(entry["width"]), int(entry["height"])
    msg = (
        f"image {entry['file_name']} (id {entry['id']}) is {size[0]}x{size[1]} (width x height) as read, "
        f"but {annotations.name} says {w}x{h}"
    )
    other = (size[1], size[0]) if tag in _TRANSPOSING else size
    if other == (w, h) and other != size:
        flip = "apply" if exif == "ignore" else "ignore"
        msg += f"; it carries EXIF orientation {tag}: dataset.exif={flip} reads it at the annotated size"
    return msg


def scan_images(
    entries: Sequence[Mapping[str, Any]],
    images_dir: Path,
    annotations: Path,
    *,
    exif: str = "ignore",
    size_mismatch: str = "error",
    decode: bool = False,
) -> ImageScan:
    """Check each image against its annotation entry (see the module docstring)."""
    scan = ImageScan(exif_mode=exif)
    for entry in entries:
        name = str(entry["file_name"])
        path = images_dir / name
        try:
            with Image.open(path) as im:
                tag = _orientation(im)
                size = im.size
                if exif == "apply" and tag in _TRANSPOSING:
                    size = (size[1], size[0])
                mode = im.mode
                if decode:
                    im.load()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            if not decode:  # evaluation counts unreadable images itself (evaluation.max_failed_fraction)
                continue
            what = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be decoded: {exc}"
            raise DatasetError(f"image {path} (id {entry['id']}) {what}") from None
        scan.checked += 1
        if tag != 1:
            scan.oriented.append((name, tag))
        if mode in SIXTEEN_BIT_MODES:
            scan.sixteen_bit.append(name)
        if size != (int(entry["width"]), int(entry["height"])):
            message = _mismatch(entry, size, tag, exif, annotations)
            if size_mismatch != "warn":
                raise DatasetError(f"{message}: fix the annotation file or set dataset.size_mismatch=warn")
            scan.mismatched.append(message)
    for note in scan.notes():
        log.warning("DATA: %s", note)
    return scan


__all__ = ["ImageReader", "ImageScan", "read_image", "scan_images"]
