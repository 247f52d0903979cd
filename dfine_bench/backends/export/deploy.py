"""The paper's deploy artifact: the model with its postprocessor inside one ONNX graph.

The official D-FINE / RT-DETR deployment export (``tools/deployment/export_onnx.py``) wraps the
model and its postprocessor in deploy mode into one module whose inputs are ``images`` and
``orig_target_sizes`` (width, height per image) and whose outputs are ``labels``, ``boxes`` (xyxy
pixels of the original image) and ``scores``: the top-k (300) of the sigmoid scores over every
(query, class) pair, no threshold. The paper's latencies time that graph, so the postprocessor's
top-k is part of them (``timed: model+postprocess``).

``DeployModel`` is that module for any adapter with the sigmoid top-k postprocessor (D-FINE,
RT-DETR, DEIM: ``deploy_unsupported`` says why another family has none); ``export_deploy_onnx``
writes it (TorchScript exporter, dynamic batch, as the official script); ``compare_deploy`` checks any
runner of it (a backend built with ``graph="deploy"``) against eager + the adapter's own
postprocessor, ``check_deploy`` does so for the file in ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dfine_bench.errors import DfineBenchError

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter

INPUT_NAMES = ("images", "orig_target_sizes")
OUTPUT_NAMES = ("labels", "boxes", "scores")
TIMED = "model+postprocess"
#: the exporter that writes the deploy graph (the official deployment script's)
DEPLOY_EXPORTER = "torchscript"
#: the fraction of detections allowed without a partner: which of several equal scores at the
#: top-k boundary makes the cut may differ between runtimes (random-init weights give many ties)
MAX_UNMATCHED = 0.05


def deploy_unsupported(adapter: DetectorAdapter) -> str | None:
    """Why this adapter has no deploy artifact (None when it has one)."""
    from dfine_bench.adapters.hf_common import HFDetectionAdapter

    if tuple(adapter.output_names[:2]) != ("logits", "pred_boxes"):
        return f"{adapter.spec.name} outputs {adapter.output_names}, not (logits, pred_boxes)"
    if not isinstance(adapter, HFDetectionAdapter) or (
        type(adapter).postprocess is not HFDetectionAdapter.postprocess
    ):
        return (
            f"{adapter.spec.name} ({adapter.spec.family}) has its own postprocessor; the deploy artifact "
            "puts the sigmoid top-k one (D-FINE, RT-DETR, DEIM) in the graph"
        )
    return None


class DeployModel(nn.Module):
    """``(images, orig_target_sizes[w, h]) -> (labels, boxes, scores)``: the model and its top-k."""

    def __init__(self, adapter: DetectorAdapter, top_k: int | None = None) -> None:
        super().__init__()
        self.model = adapter.export_module().eval()
        self.top_k = top_k if top_k is not None else adapter.spec.detections_per_image

    def forward(self, images: torch.Tensor, orig_target_sizes: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, boxes = self.model(images)[:2]
        num_classes = logits.shape[-1]
        cx, cy, w, h = boxes.float().unbind(-1)
        xyxy = torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)
        xyxy = xyxy * orig_target_sizes.to(xyxy.dtype).repeat(1, 2).unsqueeze(1)
        scores = logits.float().sigmoid().flatten(1)
        k = min(self.top_k or logits.shape[1], scores.shape[1])
        scores, index = torch.topk(scores, k, dim=1)
        labels = index - torch.div(index, num_classes, rounding_mode="floor") * num_classes
        query = torch.div(index, num_classes, rounding_mode="floor")
        picked = xyxy.gather(1, query.unsqueeze(-1).repeat(1, 1, 4))
        return labels, picked, scores


def sizes_tensor(original_sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``orig_target_sizes`` as the official graph takes them: (width, height) per image, int64."""
    return torch.tensor([[w, h] for h, w in original_sizes], dtype=torch.int64)


def export_deploy_onnx(
    adapter: DetectorAdapter, path: Path, *, input_size: tuple[int, int], opset: int = 17
) -> Path:
    """Write the deploy artifact of ``adapter`` to ``path`` (checked with ``onnx.checker``)."""
    import onnx

    reason = deploy_unsupported(adapter)
    if reason:
        raise DfineBenchError(f"no deploy artifact: {reason}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = DeployModel(adapter).eval()
    images = adapter.example_input(1, input_size).to(adapter.device, torch.float32)
    sizes = sizes_tensor([input_size]).to(adapter.device)
    axes = {n: {0: "batch"} for n in (*INPUT_NAMES, *OUTPUT_NAMES)}
    tmp = path.with_suffix(".tmp.onnx")
    # the exporter is chatty (warnings, prints); the run log stays readable
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (images, sizes),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    onnx.checker.check_model(str(tmp))
    tmp.replace(path)
    return path


def compare_deploy(
    adapter: DetectorAdapter,
    infer: Callable[[torch.Tensor, torch.Tensor], Sequence[Any]],
    images: Sequence[np.ndarray],
    *,
    tie: float = 1e-4,
) -> dict[str, Any]:
    """Compare a deploy graph with eager + ``adapter.postprocess`` on ``images``.

    ``infer(images, orig_target_sizes)`` runs the graph on host tensors and returns its
    ``(labels, boxes, scores)`` (tensors or arrays, batch first). Returns the largest score and box
    differences and the fraction of reference detections without a partner (``_match``: top-k
    near-ties may order equal scores differently, and which of two equal scores makes the top-k
    can differ); ``tie`` is how far two scores may be apart and still be partners."""
    score_diff = box_diff = 0.0
    unmatched = total = 0
    largest_side = 0
    for image in images:
        pre = adapter.preprocess([image])
        x = pre.pixel_values.to(adapter.device, torch.float32)
        with torch.inference_mode():
            ref = adapter.postprocess(adapter.forward(x), pre.original_sizes)[0]
        labels, boxes, scores = (_numpy(t)[0] for t in infer(x.cpu(), sizes_tensor(pre.original_sizes)))
        sd, bd, bad = _match(
            (ref.labels.cpu().numpy(), ref.boxes.cpu().numpy(), ref.scores.cpu().numpy()),
            (labels, boxes, scores),
            tie=tie,
        )
        score_diff, box_diff = max(score_diff, sd), max(box_diff, bd)
        unmatched += bad
        total += len(scores)
        largest_side = max(largest_side, *pre.original_sizes[0])
    return {
        "reference": "eager fp32 + the adapter's postprocessor, same images",
        "images": len(images),
        "detections": total,
        "max_score_diff": score_diff,
        "max_box_diff_px": box_diff,
        # in units of the image's longer side: comparable with the model graph's normalised boxes
        "max_box_diff_rel": box_diff / largest_side if largest_side else 0.0,
        "label_mismatch_fraction": unmatched / total if total else 0.0,
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "timed": TIMED,
    }


def deploy_check_failure(check: dict[str, Any], atol: float) -> str | None:
    """Why a deploy graph does not compute what eager + postprocess does (None: it does).

    Scores and boxes (relative to the image's longer side) must agree within ``atol`` and at most
    ``MAX_UNMATCHED`` of the detections may lack a partner (top-k boundary ties)."""
    worst = max(check["max_score_diff"], check["max_box_diff_rel"])
    if worst > atol:
        return (
            f"the deploy graph differs from eager + postprocess by {worst:.4g} > backend.atol={atol:g} "
            f"(scores {check['max_score_diff']:.3g}, boxes {check['max_box_diff_px']:.3g} px)"
        )
    if check["label_mismatch_fraction"] > MAX_UNMATCHED:
        return (
            f"{check['label_mismatch_fraction']:.1%} of the deploy graph's detections have no partner of "
            f"the same label and score in eager + postprocess (allowed: {MAX_UNMATCHED:.0%})"
        )
    return None


def check_deploy(
    adapter: DetectorAdapter,
    path: Path,
    images: Sequence[np.ndarray],
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> dict[str, Any]:
    """Run the ONNX artifact at ``path`` in ONNX Runtime and ``compare_deploy`` it with eager."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=list(providers))

    def infer(images_: torch.Tensor, sizes: torch.Tensor) -> Sequence[Any]:
        feeds = {"images": images_.numpy(), "orig_target_sizes": sizes.numpy()}
        return session.run(list(OUTPUT_NAMES), feeds)

    return compare_deploy(adapter, infer, images)


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _match(
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    got: tuple[np.ndarray, np.ndarray, np.ndarray],
    tie: float,
) -> tuple[float, float, int]:
    """Pair each reference detection with an unused one of the same label and a score within ``tie``
    (the closest box): (max score diff, max box diff, unmatched count). Random-init weights give many
    equal scores, which two runtimes may order differently; a pairing does not depend on that order."""
    r_labels, r_boxes, r_scores = ref
    g_labels, g_boxes, g_scores = got
    used = np.zeros(len(g_scores), dtype=bool)
    score_diff = box_diff = 0.0
    unmatched = 0
    for i in range(len(r_scores)):
        cand = np.flatnonzero(~used & (g_labels == r_labels[i]) & (np.abs(g_scores - r_scores[i]) <= tie))
        if cand.size == 0:
            unmatched += 1
            continue
        dist = np.abs(g_boxes[cand] - r_boxes[i]).max(axis=1)
        j = cand[int(dist.argmin())]
        used[j] = True
        score_diff = max(score_diff, float(abs(g_scores[j] - r_scores[i])))
        box_diff = max(box_diff, float(dist.min()))
    return score_diff, box_diff, unmatched
