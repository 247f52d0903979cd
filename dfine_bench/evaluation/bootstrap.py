"""Bootstrap confidence intervals of COCO AP over images, from the evaluation's own matching.

COCO AP depends on which images were evaluated: another sample of images from the same
distribution gives another AP. This module estimates that spread with a percentile bootstrap
over images, without re-running inference and without running COCOeval once per replicate:

* ``matching_from_cocoeval`` keeps what ``COCOeval.evaluate`` decided per (category, image) for
  area ``all`` and maxDets 100 (``evalImgs``: each detection's score, whether it matched at each
  IoU threshold, whether it is ignored; the number of non-ignored ground truths) as flat arrays,
  every category's detections sorted once, exactly as ``COCOeval.accumulate`` sorts them
  (descending score, a stable merge sort over the images in id order).
* A replicate draws ``N`` images with replacement (multinomial counts ``w``, one per image).
  Evaluating the resample with COCOeval, each drawn copy being an image of its own, would give
  every copy the same matching; so the replicate's cumulative true/false positive counts are the
  sums of ``w[image]`` over the sorted detections, and its number of ground truths is
  ``sum(w * npig)``. ``replicate_ap`` re-accumulates precision from those counts exactly as
  ``COCOeval.accumulate`` does (the same ``tp / (tp + fp + eps)``, recall ``tp / npig``, the
  monotone precision envelope, 101 recall thresholds, categories without ground truth left out),
  so a replicate's AP equals pycocotools' AP of the resample with the copies given new ids
  (``tests/evaluation/test_bootstrap.py`` checks this to 1e-9).
* Precision only needs evaluating where a true positive lands: the envelope's maxima sit at true
  positives, and every recall threshold is first reached at one. A replicate's running detection
  count at those positions is a sparse (positions x images) count matrix times the weights, and
  the mean over recall thresholds is a weighted sum over those positions. That, and many
  replicates per array operation, is what makes B = 1000 on COCO val size take seconds
  (``benchmarks/bench_bootstrap.py``).

The replicates' weights depend only on the sorted image ids, B and the seed (``bootstrap_weights``):
two evaluations of the same images with the same settings are resampled identically, which is
what a paired comparison (``evaluation.paired``) needs. ``summarize`` puts the CIs, the settings
and the replicate values into the record (``details["bootstrap"]``). The replicates' AP is not
symmetric around the evaluation's (the precision envelope is a running maximum), so a
percentile interval may sit off-centre around it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dfine_bench.config.settings import BootstrapSettings
from dfine_bench.errors import ConfigError

#: The stats the bootstrap covers: IoU .50:.95, .50 and .75 (area all, maxDets 100).
BOOTSTRAP_STATS = ("AP", "AP50", "AP75")
MAX_DETS = 100
METHOD = (
    "percentile bootstrap over images: multinomial image weights, COCOeval's accumulate re-run "
    "on the evaluation's own per-image matching (area all, maxDets 100)"
)
#: Rows of replicates per array operation: bounded so a replicate block of one category stays small.
_CELLS_PER_BLOCK = 2_000_000


@dataclass(frozen=True)
class ImageMatching:
    """COCOeval's per-image matching (area all, maxDets 100) as flat arrays.

    Detections of category ``k`` are ``offsets[k]:offsets[k + 1]``, already in accumulate's order.
    Bit ``t`` of ``det_tp`` / ``det_ignored``: a true positive / ignored at ``iou_thresholds[t]``
    (neither: a false positive). ``gt_counts[i, k]``: non-ignored ground truths of category ``k``
    in image ``image_ids[i]``.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    offsets: np.ndarray
    det_image: np.ndarray
    det_score: np.ndarray
    det_tp: np.ndarray
    det_ignored: np.ndarray
    gt_counts: np.ndarray

    @property
    def num_images(self) -> int:
        return int(self.image_ids.size)

    def positions(self, k: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(true positive, ignored) positions within category ``k``'s sorted detections at IoU ``t``."""
        s = slice(int(self.offsets[k]), int(self.offsets[k + 1]))
        bit = np.uint16(1 << t)
        return np.flatnonzero(self.det_tp[s] & bit), np.flatnonzero(self.det_ignored[s] & bit)


def _bits(flags: np.ndarray) -> np.ndarray:
    """A T x D boolean array as D uint16 bit masks (bit t: row t)."""
    shifts = np.arange(flags.shape[0], dtype=np.uint16)[:, None]
    return (flags.astype(np.uint16) << shifts).sum(axis=0, dtype=np.uint16)


def matching_from_cocoeval(ev: Any) -> ImageMatching:
    """The matching a pycocotools ``COCOeval`` computed in ``evaluate()`` (bbox, area ``all``).

    ``ev.params.maxDets`` must include 100 and ``areaRng`` the ``all`` range. The detections of a
    category are ordered as ``accumulate`` orders them, so the all-ones weights reproduce its
    precision exactly.
    """
    p = ev.params
    if "all" not in list(p.areaRngLbl) or MAX_DETS not in list(p.maxDets):
        raise ConfigError("the bootstrap needs COCOeval run with area 'all' and maxDets 100")
    if len(p.iouThrs) > 16:
        raise ConfigError(f"the bootstrap handles at most 16 IoU thresholds, got {len(p.iouThrs)}")
    img_ids, cat_ids = [int(i) for i in p.imgIds], [int(c) for c in p.catIds]
    n_img, n_area = len(img_ids), len(p.areaRng)
    area = list(p.areaRngLbl).index("all")
    gt_counts = np.zeros((n_img, len(cat_ids)), dtype=np.int64)
    offsets = [0]
    parts: dict[str, list[np.ndarray]] = {"image": [], "score": [], "tp": [], "ignored": []}
    for k in range(len(cat_ids)):
        images, scores, tps, ignored = [], [], [], []
        base = k * n_area * n_img + area * n_img
        for i in range(n_img):
            e = ev.evalImgs[base + i]
            if e is None:
                continue
            gt_counts[i, k] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
            score = np.asarray(e["dtScores"][:MAX_DETS], dtype=np.float64)
            if not score.size:
                continue
            dtm = np.asarray(e["dtMatches"])[:, :MAX_DETS]
            dtig = np.asarray(e["dtIgnore"])[:, :MAX_DETS].astype(bool)
            images.append(np.full(score.size, i, dtype=np.int32))
            scores.append(score)
            # accumulate: tps = dtm & ~dtIg (a match to gt id 0 reads as none, as there)
            tps.append(_bits(np.logical_and(dtm != 0, ~dtig)))
            ignored.append(_bits(dtig))
        if scores:
            score_k = np.concatenate(scores)
            order = np.argsort(-score_k, kind="mergesort")  # accumulate's own sort
            parts["image"].append(np.concatenate(images)[order])
            parts["score"].append(score_k[order])
            parts["tp"].append(np.concatenate(tps)[order])
            parts["ignored"].append(np.concatenate(ignored)[order])
            offsets.append(offsets[-1] + score_k.size)
        else:
            offsets.append(offsets[-1])

    def cat(name: str, dtype: Any) -> np.ndarray:
        return np.concatenate(parts[name]).astype(dtype) if parts[name] else np.zeros(0, dtype=dtype)

    return ImageMatching(
        image_ids=np.asarray(img_ids, dtype=np.int64),
        category_ids=np.asarray(cat_ids, dtype=np.int64),
        iou_thresholds=np.asarray(p.iouThrs, dtype=np.float64),
        recall_thresholds=np.asarray(p.recThrs, dtype=np.float64),
        offsets=np.asarray(offsets, dtype=np.int64),
        det_image=cat("image", np.int32),
        det_score=cat("score", np.float64),
        det_tp=cat("tp", np.uint16),
        det_ignored=cat("ignored", np.uint16),
        gt_counts=gt_counts,
    )


def bootstrap_weights(num_images: int, replicates: int, seed: int) -> np.ndarray:
    """``replicates`` x ``num_images`` multinomial counts (each row sums to ``num_images``), seeded."""
    rng = np.random.default_rng(seed)
    pvals = np.full(num_images, 1.0 / num_images)
    return rng.multinomial(num_images, pvals, size=replicates).astype(np.int32)


def weights_fingerprint(image_ids: Sequence[int] | np.ndarray, weights: np.ndarray) -> str:
    """sha256 of the image ids and the weights: equal fingerprints mean identical resampling."""
    h = hashlib.sha256(np.asarray(image_ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(weights, dtype=np.int32).tobytes())
    return h.hexdigest()


def image_set_fingerprint(image_ids: Sequence[int] | np.ndarray) -> str:
    """sha256 of the sorted evaluated image ids."""
    return hashlib.sha256(np.sort(np.asarray(image_ids, dtype=np.int64)).tobytes()).hexdigest()


@dataclass(frozen=True)
class _Threshold:
    """One category at one IoU threshold: its true positives and ignored detections."""

    tp_pos: np.ndarray  # positions in the category's sorted detections
    tp_image: np.ndarray  # their images
    tp_in_union: np.ndarray  # their index among the category's true positives at any threshold
    ig_pos: np.ndarray
    ig_image: np.ndarray


@dataclass(frozen=True)
class _Category:
    """What a replicate needs of one category, prepared once.

    ``segments``: (U x N) sparse counts, row j the detections of each image after the (j-1)-th and
    up to the j-th of the ``U`` positions holding a true positive at any threshold; a replicate's
    running detection count at those positions is the cumulative sum of ``segments @ w``, so the
    replicate never touches every detection one by one.
    """

    segments: Any
    thresholds: list[_Threshold]


def _prepare(m: ImageMatching, k: int) -> _Category | None:
    from scipy.sparse import csr_matrix

    lo, hi = int(m.offsets[k]), int(m.offsets[k + 1])
    union = np.flatnonzero(m.det_tp[lo:hi])
    if union.size == 0:
        return None  # no true positive at any threshold: AP 0 wherever it has ground truth
    image = m.det_image[lo:hi]
    seg = np.searchsorted(union, np.arange(hi - lo), side="left")
    keep = seg < union.size  # detections after the last true positive never matter
    counts = np.ones(int(keep.sum()))
    segments = csr_matrix((counts, (seg[keep], image[keep])), shape=(union.size, m.num_images))
    thresholds = []
    for t in range(m.iou_thresholds.size):
        tp_pos, ig_pos = m.positions(k, t)
        thresholds.append(
            _Threshold(tp_pos, image[tp_pos], np.searchsorted(union, tp_pos), ig_pos, image[ig_pos])
        )
    return _Category(segments, thresholds)


def _category_ap(
    w: np.ndarray, seen_union: np.ndarray, th: _Threshold, npig: np.ndarray, rec_thrs: np.ndarray
) -> np.ndarray:
    """Mean interpolated precision (b,) of one category at one IoU threshold.

    ``w``: b x N image weights; ``seen_union``: b x U weighted detection counts up to each true
    positive of any threshold; ``npig``: b ground-truth counts (> 0). Precision is evaluated at
    the true positives only (see the module docstring).
    """
    b = w.shape[0]
    if th.tp_pos.size == 0:
        return np.zeros(b)
    seen = seen_union[:, th.tp_in_union]  # every detection up to each true positive
    tp = np.cumsum(w[:, th.tp_image], axis=1)
    if th.ig_pos.size:  # ignored detections count neither way
        ig = np.cumsum(w[:, th.ig_image], axis=1)
        before = np.searchsorted(th.ig_pos, th.tp_pos)  # ignored detections before each true positive
        seen = seen - np.concatenate([np.zeros((b, 1)), ig], axis=1)[:, before]
    fp = seen - tp
    pr = tp / (fp + tp + np.spacing(1))  # accumulate's formula, on the same integer counts
    rc = tp / npig[:, None]
    envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    # accumulate gives recall threshold r the envelope at the first position with rc >= thr[r]: the
    # thresholds a position reaches first are those between its predecessor's count and its own
    # (count: thresholds <= rc), so the mean over thresholds is a weighted sum over positions
    reached = np.searchsorted(rec_thrs, rc.ravel(), side="right").reshape(rc.shape)
    first_reached = np.diff(reached, axis=1, prepend=0)
    return (envelope * first_reached).sum(axis=1) / rec_thrs.size


def replicate_ap(matching: ImageMatching, weights: np.ndarray) -> np.ndarray:
    """AP, AP50, AP75 (fractions; NaN where no category has ground truth) per row of ``weights``.

    ``weights``: b x N image counts (a row of ones is the evaluation itself). Returns b x 3.
    """
    m = matching
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != m.num_images:
        raise ValueError(f"weights must be b x {m.num_images}, got {weights.shape}")
    n_t, n_k = m.iou_thresholds.size, m.category_ids.size
    t50, t75 = (int(np.argmin(np.abs(m.iou_thresholds - x))) for x in (0.5, 0.75))
    categories = [_prepare(m, k) for k in range(n_k)]
    largest = max((c.segments.shape[0] for c in categories if c is not None), default=1)
    block = max(1, min(weights.shape[0], _CELLS_PER_BLOCK // max(largest, m.num_images, 1)))
    out = np.full((weights.shape[0], 3), np.nan)
    for start in range(0, weights.shape[0], block):
        w = weights[start : start + block]
        w_t = np.ascontiguousarray(w.T)
        npig = w @ m.gt_counts.astype(np.float64)  # b x K: exact (integer counts)
        ap = np.zeros((w.shape[0], n_k, n_t))
        for k, cat in enumerate(categories):
            has_gt = npig[:, k] > 0
            if cat is None or not has_gt.any():
                continue
            seen_union = np.cumsum(cat.segments @ w_t, axis=0).T  # exact: integer sums
            safe = np.where(has_gt, npig[:, k], 1.0)
            for t, th in enumerate(cat.thresholds):
                ap[:, k, t] = _category_ap(w, seen_union, th, safe, m.recall_thresholds)
        valid = npig > 0  # accumulate leaves categories without ground truth at -1: not averaged
        n_valid = valid.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + block, 0] = (ap * valid[:, :, None]).sum(axis=(1, 2)) / (n_valid * n_t)
            for col, t in ((1, t50), (2, t75)):
                out[start : start + block, col] = (ap[:, :, t] * valid).sum(axis=1) / n_valid
    return out


def summarize(matching: ImageMatching, settings: BootstrapSettings, *, decimals: int = 6) -> dict[str, Any]:
    """Run the bootstrap and describe it for ``details["bootstrap"]`` (values in percent).

    Holds the settings, the image set and weights fingerprints (what a paired comparison checks),
    the full-sample value of each stat (equal to COCOeval's), its interval and standard error, and
    every replicate's value (a paired comparison subtracts them replicate by replicate).
    """
    start = time.perf_counter()
    weights = bootstrap_weights(matching.num_images, settings.replicates, settings.seed)
    values = 100.0 * replicate_ap(matching, weights)
    point = 100.0 * replicate_ap(matching, np.ones((1, matching.num_images)))[0]
    tail = 100.0 * (1.0 - settings.confidence) / 2.0
    ci: dict[str, list[float] | None] = {}
    std: dict[str, float | None] = {}
    for j, name in enumerate(BOOTSTRAP_STATS):
        col = values[:, j]
        if np.isnan(col).any():  # a replicate without ground truth: no interval
            ci[name], std[name] = None, None
            continue
        lo, hi = np.percentile(col, [tail, 100.0 - tail])
        ci[name] = [round(float(lo), decimals), round(float(hi), decimals)]
        std[name] = round(float(col.std(ddof=1)), decimals)
    return {
        "method": METHOD,
        "interval": "percentile (numpy linear interpolation)",
        "replicates": settings.replicates,
        "seed": settings.seed,
        "confidence": settings.confidence,
        "images": matching.num_images,
        "image_ids_sha256": image_set_fingerprint(matching.image_ids),
        "weights_sha256": weights_fingerprint(matching.image_ids, weights),
        "point": {
            n: None if np.isnan(v) else round(float(v), decimals) for n, v in zip(BOOTSTRAP_STATS, point)
        },
        "ci": ci,
        "std": std,
        "values": {
            n: [None if np.isnan(v) else round(float(v), decimals) for v in values[:, j]]
            for j, n in enumerate(BOOTSTRAP_STATS)
        },
        "seconds": round(time.perf_counter() - start, 4),
    }
