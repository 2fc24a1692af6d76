"""The report opens with its answer, the same lines in every form; settings as numbers."""

from __future__ import annotations

import json
import re

from samlm.compare import GridSpec, compare, write_report
from samlm.compare.report import analyse, terminal
from samlm.compare.report.answer import answer_lines
from samlm.compare.report.tables import NO_RHO, sections

from .fake import InlineBackend, fake_cell

METHODS = ["baseline", "sam", "sam_quarter", "asam"]
SPEC = dict(tasks=["glue/sst2", "glue/cola"], sizes=[100], methods=METHODS, seeds=3)


def _grid(folder, **over):
    compare(GridSpec(**{**SPEC, **over}), folder, backend=InlineBackend(), cell_fn=fake_cell)
    return write_report(folder)


def test_every_form_of_the_report_opens_with_the_same_answer(tmp_path):
    a = _grid(tmp_path)  # fake scores: sam +2.5 a stratum, sam_quarter +1, asam -1 on SST-2
    lines = answer_lines(a)
    g = a.overall()
    assert lines == [
        f"sam: mean gain {g['sam'].verdict()}; 1.90x the baseline's time per step.",
        f"sam_quarter: mean gain {g['sam_quarter'].verdict()}; keeps 40% of SAM's gain; "
        "1.90x the baseline's time per step.",
        # asam failed on CoLA: a gain over SST-2 alone, not comparable with SAM's
        f"asam: mean gain {g['asam'].verdict()}; share of SAM's gain: n/a (SAM's gain is "
        "over other strata); 1.90x the baseline's time per step.",
    ]
    assert g["sam"].verdict().startswith("+2.50 over 2 strata (6 pairs), significantly better")
    assert g["asam"].verdict().startswith("-1.00 over 1 stratum (3 pairs), significantly worse")
    bullets = [f"- {line}" for line in lines]
    term = terminal(a).splitlines()
    assert term[: len(lines) + 1] == ["The answer:", *bullets]
    md = (tmp_path / "report.md").read_text().splitlines()
    assert md[:4] == ["# SAM against its baseline", "", "## The answer", ""]
    assert md[4 : 4 + len(lines)] == bullets
    page = (tmp_path / "report.html").read_text()
    body = page[page.index("<body>") :]
    first = re.findall(r"<h2>(.*?)</h2>", body)
    assert first[0] == "The answer" and first[1] == sections(a)[0][0]
    items = re.findall(r"<li>(.*?)</li>", body)[: len(lines)]
    assert items == [line.replace("'", "&#x27;") for line in lines]


def test_a_gain_that_is_not_there_says_so(tmp_path):
    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    noise = {0: -1.0, 1: 1.5, 2: 0.5}  # SAM's gains: mean +0.33, interval across zero
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    for r in records:
        if r["method"] == "sam":
            r["score"] = 70.0 + 0.5 * r["seed"] + noise[r["seed"]]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    sam, quarter, _ = answer_lines(analyse(tmp_path))
    assert sam.startswith("sam: mean gain +0.33 over 2 strata (6 pairs), not significant (")
    assert "includes zero" in sam
    assert "share of SAM's gain: n/a (SAM's gain is not significantly above zero)" in quarter


def _settings(a) -> dict[str, dict[str, str]]:
    rows = dict((t, r) for t, _, r in sections(a))["Settings"]
    return {f"{r['task']}|{r['size']}|{r['method']}": r for r in rows}


def test_every_setting_is_a_number_with_its_source(tmp_path):
    # untuned, no learning rate given: samlm train's default for MiniLM's AdamW, 1e-4
    a = _grid(tmp_path / "untuned")
    rows = _settings(a)
    for row in rows.values():
        assert float(row["learning rate"]) == 1e-4, row
        assert "default" not in row["learning rate"] + row["rho"]
        assert row["source"].startswith("untuned defaults (learning rate: samlm train's default")
    assert rows["glue/sst2|100|baseline"]["rho"] == NO_RHO
    assert float(rows["glue/sst2|100|sam"]["rho"]) == 0.05
    assert float(rows["glue/sst2|100|asam"]["rho"]) == 0.5
    # what the cells recorded they ran at wins over the spec's
    records = [
        json.loads(x) for x in (tmp_path / "untuned" / "results.jsonl").read_text().splitlines()
    ]
    for r in records:
        r["setting"] = {"learning_rate": 3e-5, "rho": 0.1 if r["method"] != "baseline" else None}
    (tmp_path / "untuned" / "results.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records)
    )
    rows = _settings(analyse(tmp_path / "untuned"))
    assert rows["glue/sst2|100|sam"]["learning rate"] == "3e-05"
    assert rows["glue/sst2|100|sam"]["rho"] == "0.1"
    assert "as its cells recorded" in rows["glue/sst2|100|sam"]["source"]
    # a learning rate given: that number, in every row
    rows = _settings(_grid(tmp_path / "given", learning_rate=3e-4, rho_sam=0.02))
    assert {r["learning rate"] for r in rows.values()} == {"0.0003"}
    assert rows["glue/cola|100|sam"]["rho"] == "0.02"
    assert all(r["source"] == "untuned defaults" for r in rows.values())
