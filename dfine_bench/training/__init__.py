"""Small-scale training: enough to make the project's fixture model and run FDR/GO-LSD ablations.

Not a general training framework. It trains any registered adapter whose transformers model
computes its own loss from labels (D-FINE, RT-DETR, Deformable-DETR) on any COCO-format dataset
the suite reads, deterministically on the CPU from one seed, resumable from its checkpoint.
"""

from dfine_bench.training.data import TrainingSamples, targets_for_image
from dfine_bench.training.trainer import TrainResult, TrainSettings, train

__all__ = ["TrainResult", "TrainSettings", "TrainingSamples", "targets_for_image", "train"]
