"""A resolved COCO-format dataset: an annotation file plus an image folder, ready to read.

``ResolvedDataset`` is what evaluation and profiling receive: image ids in sorted order
(cut to the subset when one is set), images decoded as HWC uint8 RGB, and the
``DatasetInfo`` that goes into every record.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfine_bench.data.annotations import load_annotations
from dfine_bench.data.images import ImageReader, ImageScan, read_image, scan_images
from dfine_bench.errors import DatasetError
from dfine_bench.records.schema import DatasetInfo
from dfine_bench.utils.files import sha256_file


@dataclass
class ResolvedDataset:
    """One dataset on disk. ``subset`` keeps the first N image ids in sorted order (deterministic)."""

    name: str
    images_dir: Path
    annotations: Path
    generated: bool = False
    subset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    exif: str = "ignore"  # dataset.exif: ignore | apply (data/images.py)
    size_mismatch: str = "error"  # dataset.size_mismatch: error | warn
    _scan: ImageScan | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Absolute: records name exactly which files were used, whatever the working directory.
        self.images_dir = Path(self.images_dir).expanduser().absolute()
        self.annotations = Path(self.annotations).expanduser().absolute()
        if self.subset is not None and self.subset < 1:
            raise DatasetError(f"dataset.subset must be a positive number of images, got {self.subset}")

    # Parsed once and validated: bad files fail here, before any image is read.
    @functools.cached_property
    def coco(self) -> dict[str, Any]:
        return load_annotations(self.annotations)

    @functools.cached_property
    def _images(self) -> dict[int, dict[str, Any]]:
        return {int(im["id"]): im for im in self.coco["images"]}

    @functools.cached_property
    def _sha256(self) -> str:
        return sha256_file(self.annotations)

    def image_ids(self) -> list[int]:
        ids = sorted(self._images)
        return ids[: self.subset] if self.subset is not None else ids

    def category_ids(self) -> list[int]:
        return sorted(int(c["id"]) for c in self.coco["categories"])

    def category_names(self) -> dict[int, str]:
        return {int(c["id"]): str(c["name"]) for c in self.coco["categories"]}

    def image_entry(self, image_id: int) -> dict[str, Any]:
        try:
            return self._images[int(image_id)]
        except KeyError:
            raise DatasetError(f"image id {image_id} is not in {self.annotations}") from None

    def image_path(self, image_id: int) -> Path:
        return self.images_dir / self.image_entry(image_id)["file_name"]

    def load_image(self, image_id: int) -> np.ndarray:
        """HWC uint8 RGB pixels of one image (read as ``dataset.exif`` says)."""
        return read_image(self.image_path(image_id), exif=self.exif)

    def reader(self) -> ImageReader:
        """``read_image`` with this dataset's reading options, picklable for DataLoader workers."""
        return ImageReader(exif=self.exif)

    def scan(self, *, decode: bool = False) -> ImageScan:
        """Every used image's header against its annotation entry (``data/images.py``): a size
        mismatch is an error (or counted); EXIF-oriented and 16-bit images are counted and logged.
        ``decode`` also decodes each image, so a corrupt file fails now."""
        if decode or self._scan is None:
            entries = [self.image_entry(i) for i in self.image_ids()]
            self._scan = scan_images(
                entries, self.images_dir, self.annotations, exif=self.exif,
                size_mismatch=self.size_mismatch, decode=decode,
            )  # fmt: skip
        return self._scan

    def sample_images(self, n: int) -> list[np.ndarray]:
        """``n`` images spread evenly over the (sorted, subset) ids: the same ones on every call."""
        ids = self.image_ids()
        if n <= 0 or not ids:
            return []
        picks = np.linspace(0, len(ids) - 1, num=min(n, len(ids))).round().astype(int)
        images = [self.load_image(ids[i]) for i in picks]
        while len(images) < n:  # fewer images than asked: cycle, still deterministic
            images.append(images[len(images) % len(picks)])
        return images

    def images_identity(self) -> str:
        """One hash over each used image's file name, size and modification time (a stat per image,
        no read): replaced or edited image files change it, so a resume never keeps stale results."""
        h = hashlib.sha256()
        for image_id in self.image_ids():
            path = self.image_path(image_id)
            try:
                st = path.stat()
                h.update(f"{image_id}\0{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{image_id}\0{path.name}\0missing\n".encode())
        return h.hexdigest()[:16]

    def _notes(self) -> list[str]:
        """How the data was read (the image scan) and mapped (``extra["notes"]``, e.g. by name)."""
        return [*self.extra.get("notes", []), *self.scan().notes()]

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            kind="generated" if self.generated else "coco",
            generated=self.generated,
            annotations=str(self.annotations),
            annotations_sha256=self._sha256,
            images_root=str(self.images_dir),
            num_images=len(self.image_ids()),
            subset=self.subset,
            extra={**self.extra, **({"notes": notes} if (notes := self._notes()) else {})},
        )
