"""Result records: the schema, the metric catalogue, provenance capture and storage."""

from dfine_bench.records.metrics import COCO_STATS, METRICS, metric
from dfine_bench.records.schema import (
    SCHEMA_VERSION,
    DatasetInfo,
    Metric,
    ModelInfo,
    ResultRecord,
    SchemaVersionError,
    Setup,
)
from dfine_bench.records.store import RunStore, load_frame, load_records, newest_run, records_to_frame

__all__ = [
    "COCO_STATS",
    "METRICS",
    "SCHEMA_VERSION",
    "DatasetInfo",
    "Metric",
    "ModelInfo",
    "ResultRecord",
    "RunStore",
    "SchemaVersionError",
    "Setup",
    "load_frame",
    "load_records",
    "metric",
    "newest_run",
    "records_to_frame",
]
