"""The paper's claims as data, and how each is checked against result records.

* ``load_claims(name_or_path) -> ClaimSet``: ``name`` is a file under ``suites/claims/<name>.yaml``
  (shipped with the package), or a path to such a YAML file. ``ClaimSet.protocol`` is the file's
  ``ClaimConditions`` (defaults: ``dfine_bench.profiling.PAPER_T4``).
* ``check_claims(claims, records) -> list[ClaimResult]``: ``claims`` is a ``ClaimSet`` or a name;
  ``records`` any sequence of ``ResultRecord``.
* ``claims_frame(results) -> pandas.DataFrame`` with the columns ``CLAIM_COLUMNS``.
* ``verdict_counts(results_or_frame) -> dict``: results per verdict, every verdict present.
* ``weights_release(record)``: the released weights a record used (the weights loader's release
  tag), None for random-init or weights of unknown origin.
* Verdicts (``VERDICTS``): ``pass``, ``fail``, ``not significant`` (an AP ordering whose paired
  bootstrap interval holds zero: "not significant on these images"), ``not comparable``
  (measured, but not under the claim's conditions: random-init or unknown weights, generated
  data, another device than the claim's, ..., or a known erratum in the paper), ``not measured``
  (no usable record for it in the given records; the reason names a failed or skipped one).
* Kinds (``KINDS``): ``exact`` (params, GFLOPs after the paper's rounding), ``tolerance`` (AP
  within a tolerance, released weights on full COCO val2017 only), ``hardware`` (latency on the
  claim's device and backend, timing the deploy engine), ``relative`` (an ordering or gain between
  models measured in the same run, device and backend). A timing marked ``unstable`` or
  ``throttled`` when it was measured is never judged: "not comparable", with the reasons.
"""

from dfine_bench.claims.check import (
    CLAIM_COLUMNS,
    VERDICTS,
    check_claims,
    claims_frame,
    verdict_counts,
)
from dfine_bench.claims.model import (
    KINDS,
    Claim,
    ClaimConditions,
    ClaimSet,
    available_claims,
    load_claims,
)
from dfine_bench.claims.result import ClaimResult, weights_release

__all__ = [
    "CLAIM_COLUMNS",
    "KINDS",
    "VERDICTS",
    "Claim",
    "ClaimConditions",
    "ClaimResult",
    "ClaimSet",
    "available_claims",
    "check_claims",
    "claims_frame",
    "load_claims",
    "verdict_counts",
    "weights_release",
]
