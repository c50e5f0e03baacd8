"""The report as one self-contained HTML page: plotly's JS inlined once, no network needed."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from llem.report.data import ReportData
from llem.report.fmt import mean_ci, num, value
from llem.report.metrics import label

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
td { white-space: nowrap; } .scroll { overflow-x: auto; max-width: 100%; }
th { background: #f4f4f4; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
td.text, th.text { text-align: left; } tr.pareto td { background: #fff7e0; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 13px; }
dt { font-weight: 600; } dd { margin: 0; font-family: monospace; }
.note { background: #f0f4ff; border-left: 4px solid #5a7bd8; padding: 6px 10px; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
"""

# Click a header to sort by it; numbers sort by their data-v value, text by its text.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
        if (x === "" && y !== "") { return 1; } if (y === "" && x !== "") { return -1; }
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _dl(items: dict[str, Any]) -> str:
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items.items())
    return f"<dl>{body}</dl>" if items else "<p>none</p>"


def results_table(data: ReportData) -> str:
    """One row per configuration: its varying parameters, cycles, mean ± CI of each metric
    (the CI once 2+ cycles give one), and in server mode the over-saturated cycles."""
    heads = [(p.name, True) for p in data.params] + [("cycles ok", False), ("failed", False)]
    invalid = bool(data.invalid)
    if invalid:
        heads.append(("energy invalid", False))
    if data.server:
        heads.append(("saturated", False))
    heads += [(label(m), False) for m in data.metrics]
    if not data.server:
        heads.append(("Pareto", True))
    heads.append(("job_id", True))
    th = "".join(f'<th class="{"text" if t else "num"}">{_e(h)}</th>' for h, t in heads)
    rows = []
    for c in data.configs:
        cells = []
        for p in data.params:
            v = data.value(c, p)
            key = v if isinstance(v, int | float) and not isinstance(v, bool) else value(v)
            cells.append((value(v), key, not p.numeric))
        cells += [(c["n"], c["n"], False), (c["failed"], c["failed"], False)]
        if invalid:
            k = c.get("invalid_n") or 0
            cells.append((str(k), k, False))
        if data.server:
            k = c["saturated_n"]
            cells.append((f"{k} of {c['n']}" if k else "no", k, False))
        for m in data.metrics:
            mean, ci = c[f"{m}_mean"], c[f"{m}_ci95"]
            cells.append((mean_ci(mean, ci), "" if mean is None else repr(mean), False))
        if not data.server:
            cells.append(("yes" if c["pareto"] else "", "1" if c["pareto"] else "0", True))
        cells.append((c["job_id"], c["job_id"], True))
        tds = "".join(f'<td class="{"text" if t else "num"}" data-v="{_e(v)}">{_e(s)}</td>'
                      for s, v, t in cells)
        marked = "pareto" if c["pareto"] and not data.server else ""
        rows.append(f'<tr class="{marked}">{tds}</tr>')
    return (f'<div class="scroll"><table class="sortable" id="results"><thead><tr>{th}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


def _plot_div(name: str, fig: Any) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                      config={"displaylogo": False, "responsive": True})
    return f'<div class="plot" id="plot-{_e(name)}">{div}</div>'


def page(data: ReportData, figures: list[tuple[str, Any]], plotly_js: str) -> str:
    """The whole HTML document."""
    counts = data.counts
    summary = {"store": data.store, "configurations": counts["configs"],
               "runs ok": counts["ok"], "runs failed": counts["failed"],
               "runs with invalid energy": f"{counts.get('invalid') or 0} ("
               + ("included" if data.include_invalid else "left out of energy figures") + ")",
               "cycles": counts["cycles"], "swept parameters": ", ".join(data.swept) or "none",
               "total energy (J)": num(counts["energy_j"]),
               "first result": counts["first"], "last result": counts["last"]}
    if data.server:
        summary["mode"] = "server (each configuration is a rate level)"
    swept_values = {}
    for p in data.params:
        vals = ", ".join(value(v) for v in data.points.values_of(p.path))
        swept_values[p.name if p.name == p.path else f"{p.name} ({p.path})"] = (
            vals + (f"; changes with {', '.join(p.together)}" if p.together else ""))
    plots = "".join(_plot_div(name, fig) for name, fig in figures)
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llem report: {_e(data.campaign)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{plotly_js}</script>
</head><body>
<h1>llem report: {_e(data.campaign)}</h1>
<p>Generated {_e(generated)}. Every figure is a mean over the cycles of one configuration,
with its 95% confidence interval (Student t): in the table from 2 cycles, as error bars on
the plots from 3. Columns and units: docs/schema.md.</p>
{notes}
<h2>Campaign</h2>
<div class="columns"><div><h3>Summary</h3>{_dl(summary)}<h3>Swept</h3>{_dl(swept_values)}</div>
<div><h3>Environment</h3>{_dl(data.environment)}</div></div>
<details><summary>Fixed configuration (every job)</summary>{_dl(data.fixed)}</details>
<h2>Results</h2>
<p>One row per configuration; click a header to sort. {_e(_table_note(data))}</p>
{results_table(data)}
<h2>Plots</h2>
{plots}
<script type="application/json" id="llem-data">{_json(data)}</script>
<script type="text/javascript">{SORT_JS}</script>
</body></html>
"""


def _table_note(data: ReportData) -> str:
    if data.server:
        return ("Each row is one rate level of a configuration; a level over-saturated in "
                "some cycle is not a normal point.")
    return ("Highlighted rows are on the Pareto frontier (no other configuration has more "
            "tokens/s at no more J/token).")


def _json(data: ReportData) -> str:
    """The configurations as JSON in the page, for scripts that read reports."""
    params = [{"name": p.name, "path": p.path, "level": p.level, "together": list(p.together)}
              for p in data.params]
    text = json.dumps({"campaign": data.campaign, "swept": data.swept, "params": params,
                       "server": data.server, "include_invalid": data.include_invalid,
                       "invalid": data.invalid, "configs": data.configs}, default=str)
    return text.replace("</", "<\\/")
