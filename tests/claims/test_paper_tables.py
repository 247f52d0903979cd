"""Every claim that cites a paper table is in that table, with the value the table prints.

``data/paper_tables.yaml`` is the paper's tables re-typed (its header cites the sources). A claim's
``source`` "Table N" or "Table N (x)" names the table; "(x)" is a block of the table when the index
has "Table N (x)" (Objects365, 12 / 24 epochs), else the row as the paper labels it. Otherwise the
row is the claim's model under the paper's name (``PAPER_ROWS``). What the paper does not state
must not cite a table: the project's own extensions say so in their source.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from dfine_bench.claims import Claim, load_claims

TABLES: dict[str, dict[str, dict[str, float]]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "paper_tables.yaml").read_text(encoding="utf-8")
)["tables"]

#: dfine-bench model names -> the paper's row labels (per table where one name means two rows).
PAPER_ROWS: dict[str, str] = {
    "dfine_s": "D-FINE-S",
    "dfine_m": "D-FINE-M",
    "dfine_l": "D-FINE-L",
    "dfine_x": "D-FINE-X",
    "rtdetr_r18": "RT-DETR-R18",
    "rtdetr_r34": "RT-DETR-R34",
    "rtdetr_r50": "RT-DETR-R50",
    "rtdetr_r101": "RT-DETR-R101",
    "rtdetrv2_r18": "RT-DETRv2-S",
    "rtdetrv2_r34": "RT-DETRv2-M",
    "rtdetrv2_r50": "RT-DETRv2-L",
    "rtdetrv2_r101": "RT-DETRv2-X",
    "deformable_detr_refine": "Deformable-DETR",
    "deformable_detr+fdr": "Deformable-DETR + FDR & GO-LSD",
    "dab_detr": "DAB-DETR",
    "dab_detr+fdr": "DAB-DETR + FDR & GO-LSD",
    "dn_detr": "DN-DETR",
    "dn_detr+fdr": "DN-DETR + FDR & GO-LSD",
    "dino": "DINO",
    "dino+fdr": "DINO + FDR & GO-LSD",
    "t5_baseline": "baseline",
    "t5_logit_mimicking": "Logit Mimicking",
    "t5_feature_imitation": "Feature Imitation",
    "t5_fdr": "baseline + FDR",
    "t5_fdr_localization_distillation": "Localization Distill.",
    "t5_fdr_go_lsd": "GO-LSD",
    **{f"yolov8{s}": f"YOLOv8-{s.upper()}" for s in "smlx"},
    **{f"yolov9{s}": f"YOLOv9-{s.upper()}" for s in "smce"},
    **{f"yolov10{s}": f"YOLOv10-{s.upper()}" for s in "smlx"},
    **{f"yolo11{s}": f"YOLO11-{s.upper()}" for s in "smlx"},
    **{f"lwdetr_{s}": f"LW-DETR-{s.upper()}" for s in "smlx"},
}
TABLE3_ROWS = {
    "dfine_l_step6": "step 6: RT-DETRv2 Training Strategy",
    "dfine_l_step7": "step 7: + FDR",
    "dfine_l": "step 8: + GO-LSD (= D-FINE-L)",
}
CITATION = re.compile(r"Table (\d+)(?: \(([^)]*)\))?(?:;.*)?")


def _value(table: int, paren: str | None, model: str, metric: str) -> float:
    """The cited table's value of ``metric`` for ``model`` (KeyError: not in that table)."""
    block = f"Table {table} ({paren})" if paren and f"Table {table} ({paren})" in TABLES else f"Table {table}"
    # a row the source names itself (a starred YOLO row, a Table 4 setting), else the model's
    names = TABLE3_ROWS if table == 3 else PAPER_ROWS
    row = paren if paren and block == f"Table {table}" else names[model]
    return float(TABLES[block][row][metric])


def _holds(claim: Claim, table: int, paren: str | None) -> bool:
    if claim.kind != "relative":
        return _value(table, paren, claim.model or "", claim.metric) == claim.claimed
    va, vb = (_value(table, paren, m or "", claim.metric) for m in (claim.a, claim.b))
    if claim.relation == "less":
        return va < vb
    if claim.relation == "greater":
        return va > vb
    assert claim.claimed is not None and claim.tolerance is not None
    measured = vb - va if claim.relation == "gain" else va / vb
    return (
        abs(measured - claim.claimed) <= claim.tolerance + 1e-9
        if claim.relation == "ratio"
        else (
            abs(measured - claim.claimed) < 1e-6  # a gain is the printed difference of two printed values
        )
    )


def citation_problems(claims: list[Claim]) -> list[str]:
    """Each claim citing a table that does not hold it, as '<id>: why'."""
    problems = []
    for claim in claims:
        cited = CITATION.fullmatch(claim.source)
        if cited is None:
            continue
        table, paren = int(cited.group(1)), cited.group(2)
        try:
            ok = _holds(claim, table, paren)
        except KeyError as missing:
            problems.append(f"{claim.id}: {claim.source} has no {missing}")
            continue
        if not ok:
            problems.append(f"{claim.id}: {claim.source} does not print {claim.describe()}")
    return problems


def test_every_claim_citing_a_table_is_in_that_table() -> None:
    claims = list(load_claims("dfine_paper"))
    assert citation_problems(claims) == []
    cited = Counter(m.group(1) for c in claims if (m := CITATION.fullmatch(c.source)))
    # every table the issue names is encoded (1, 2, 3, 4, 5, 7), each with its claims
    assert set(cited) == {"1", "2", "3", "4", "5", "7"}, cited


def test_the_index_catches_a_wrong_citation(tmp_path: Path) -> None:
    """The check fails a value the table does not print, a model not in the table, and a relation
    the table's values do not satisfy."""
    path = tmp_path / "wrong.yaml"
    path.write_text(
        "rows:\n"
        "  - {model: dfine_l, source: 'Table 1', AP: 54.1}\n"
        "  - {model: rtdetr_r18, source: 'Table 2 (12 epochs)', params: 20}\n"
        "relative:\n"
        "  - {id: g, source: 'Table 2 (12 epochs)', metric: AP, a: dino, relation: gain, b: dino+fdr,"
        " claimed: 2.0, tolerance: 0.3}\n"
        "  - {id: o, source: 'Table 1', metric: latency_mean, a: rtdetr_r50, relation: less, b: dfine_l}\n"
    )
    problems = citation_problems(list(load_claims(path)))
    assert [p.split(":")[0] for p in problems] == [
        "dfine_l.coco.AP.table_1",
        "rtdetr_r18.coco.params.table_2_12_epochs",
        "g",
        "o",
    ]


def test_claims_beyond_the_paper_do_not_cite_a_table_as_if_it_said_them() -> None:
    claims = {c.id: c for c in load_claims("dfine_paper")}
    for claim in claims.values():
        if "Table" in claim.source and not CITATION.fullmatch(claim.source):
            assert "extension" in claim.source.lower(), claim.id
    for rtdetr in ("fdr_same_params_rtdetr_r18", "fdr_same_params_rtdetr_r50"):
        assert claims[rtdetr].source.startswith("Project extension of Table 2")
        assert "extension of Table 2" in claims[rtdetr].describe()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        # Table 2: five gains, the same-params claim, 10 absolute rows x 7 metrics
        ("2", {"relative": 6, "rows": 70}),
        # Table 3: FDR and GO-LSD steps: two gains, three cost ratios; step 6/7 rows
        ("3", {"relative": 5, "rows": 5}),
        ("4", {"rows": 18}),
        # Table 5: the GO-LSD gain, three orderings, two training-overhead ratios; six AP rows
        ("5", {"relative": 6, "rows": 6}),
    ],
)
def test_the_tables_the_issue_names_are_encoded(table: str, expected: dict[str, int]) -> None:
    counts: Counter[str] = Counter()
    for c in load_claims("dfine_paper"):
        cited = CITATION.fullmatch(c.source)
        if cited and cited.group(1) == table:
            counts["relative" if c.kind == "relative" else "rows"] += 1
    assert dict(counts) == expected
