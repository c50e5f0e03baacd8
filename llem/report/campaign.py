"""One campaign in the store, as the reading commands need it: what varies between its
configurations (from their stored points), its environment, and mean / std / 95% CI of
metrics per group of configurations.

Energy figures leave out ok rows whose energy is invalid (the `stats` view's rule,
llem.store.validity_fields.VALID_SQL) unless include_invalid (--include-invalid); their
throughput and latency stay in (is_energy_metric says why), and each group counts the rows
left out (invalid_n)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from llem.errors import UserError
from llem.report.fmt import sort_key, value
from llem.report.params import Param, Points
from llem.store.query import connect
from llem.store.store import Store
from llem.store.validity_fields import is_energy_metric, with_valid

# Columns that describe where it ran.
ENVIRONMENT_COLUMNS = ("host", "gpu_name", "gpu_count", "driver_version", "cuda_version",
                       "cpu_model", "python_version", "torch_version", "transformers_version",
                       "backend_version", "ray_version", "llem_version", "llem_commit",
                       "energy_method", "energy_unavailable")
NUMERIC_TYPES = ("DOUBLE", "FLOAT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT",
                 "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT", "DECIMAL")


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Campaign:
    """A campaign's rows in the store, behind one DuckDB connection."""

    store: Store
    name: str
    con: duckdb.DuckDBPyConnection
    columns: dict[str, str]  # runs column -> DuckDB type
    include_invalid: bool = False  # energy figures over every ok row, the invalid ones too
    _points: Points | None = None

    @classmethod
    def open(cls, store: Store, name: str, include_invalid: bool = False) -> Campaign:
        """The campaign, or a UserError naming the campaigns the store does have."""
        try:
            known = store.campaigns()
        except OSError as exc:
            raise UserError(f"cannot read store {store.uri}: {str(exc).splitlines()[0]}") \
                from None
        if name not in known:
            if not known:
                raise UserError(f"no campaigns in store {store.uri}: run one with `llem run "
                                "GRID`, or point --store at the store it wrote")
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"campaign '{name}' is not in store {store.uri}: {hint}campaigns "
                            f"there: {', '.join(known)}")
        con = connect(store)
        cols = {r[0]: r[1] for r in con.execute("DESCRIBE runs").fetchall()}
        return cls(store, name, con, cols, include_invalid)

    def sql(self, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a query as dicts."""
        cur = self.con.execute(query, [self.name, *(params or [])])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c, t in self.columns.items()
                if t.split("(")[0] in NUMERIC_TYPES and c not in ("schema_version", "cycle")]

    @property
    def points(self) -> Points:
        """The configurations shown (those with an ok run; all when none is ok) and what
        varies between them, from their stored points."""
        if self._points is None:
            rows = self.sql("SELECT job_id, any_value(point_json) AS p, bool_or(status = 'ok') "
                            "AS ok FROM runs WHERE campaign = ? GROUP BY job_id ORDER BY job_id")
            ok = [r for r in rows if r["ok"]] or rows
            self._points = Points.of((r["job_id"], r["p"]) for r in ok)
        return self._points

    @property
    def params(self) -> list[Param]:
        """The parameters that vary between the campaign's configurations."""
        return self.points.params

    def swept(self) -> list[str]:
        """The varying parameters' names."""
        return [p.name for p in self.params]

    @property
    def server_mode(self) -> bool:
        """Whether the campaign measured rate levels of a server (mode = 'server')."""
        if "mode" not in self.columns:
            return False
        return bool(self.sql("SELECT count(*) AS n FROM runs WHERE campaign = ? AND "
                             "mode = 'server'")[0]["n"])

    def keys(self, names: list[str], what: str) -> list[str]:
        """Each name as a grouping key: a parameter (its name or dotted path, or any path of
        the points, as the point's path) or a runs column; else a UserError with a
        suggestion."""
        out = []
        for n in names:
            path = self.points.find(n)
            if path is None and n not in self.columns:
                choices = [*self.swept(), *self.points.paths, *self.columns]
                close = difflib.get_close_matches(n, choices, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise UserError(f"unknown {what} column '{n}': {hint}it must be a parameter of "
                                "the points (dotted, e.g. measurement.request_rate) or a "
                                f"column of the runs view (varying here: "
                                f"{', '.join(self.swept()) or 'none'})")
            key = path if path is not None else n
            if key not in out:
                out.append(key)
        return out

    def environment(self) -> dict[str, str]:
        """Each environment column's distinct values, joined; columns all null are left out."""
        out = {}
        for c in ENVIRONMENT_COLUMNS:
            if c in self.columns:
                vals = self.sql(f"SELECT DISTINCT CAST({ident(c)} AS VARCHAR) AS v FROM runs "
                                f"WHERE campaign = ? AND {ident(c)} IS NOT NULL ORDER BY v")
                if vals:
                    out[c] = "; ".join(str(v["v"]) for v in vals)
        return out

    def fixed_config(self) -> dict[str, str]:
        """Parameters every configuration of the campaign shared (from point_json), as
        dotted paths."""
        return self.points.fixed()

    def counts(self) -> dict[str, Any]:
        return self.sql(f"""SELECT count(*) FILTER (status = 'ok') AS ok,
            count(*) FILTER (status <> 'ok') AS failed, count(DISTINCT job_id) AS configs,
            count(*) FILTER (status = 'ok' AND NOT _valid) AS invalid,
            max(cycle) + 1 AS cycles, sum(energy_j) AS energy_j,
            CAST(min(started_at) AS VARCHAR) AS first,
            CAST(max(finished_at) AS VARCHAR) AS last FROM ({self.valid_runs()})
            WHERE campaign = ?""")[0]

    def valid_runs(self) -> str:
        """SELECT over runs with `_valid`: whether the row's energy can be trusted."""
        return with_valid("runs", set(self.columns))

    def group_stats(self, by: list[str], metrics: list[str]) -> list[dict[str, Any]]:
        """Per group of `by` values (point paths, see keys(), or runs columns), over its ok
        runs (cycles): n, saturated_n (server mode), invalid_n (rows whose energy is invalid:
        left out of the energy metrics unless include_invalid), and for each metric its n,
        mean, std, 95% CI half-width (Student t) and CV. Rows in the order of their `by`
        values."""
        paths = [b for b in by if b in self.points.paths]
        if paths:
            jobs = sorted(self.points.flat)
            table = {"job_id": jobs}
            for i, p in enumerate(paths):
                table[f"p{i}"] = [json.dumps(self.points.flat[j].get(p), sort_keys=True)
                                  for j in jobs]
            self.con.register("llem_points", pa.table(table))
        exprs = [f"p.p{paths.index(b)}" if b in paths else f"r.{ident(b)}" for b in by]
        keys = ", ".join(f"{e} AS {ident(b)}" for e, b in zip(exprs, by, strict=True))
        aggs = ["count(*) FILTER (WHERE NOT r._valid) AS invalid_n"]
        keep = "true" if self.include_invalid else "r._valid"
        for m in metrics:
            q = f"r.{ident(m)}"
            if is_energy_metric(m):
                q = f"(CASE WHEN {keep} THEN {q} END)"
            aggs.append(f"count({q}) AS {ident(m + '_n')}, avg({q}) AS {ident(m + '_mean')}, "
                        f"stddev_samp({q}) AS {ident(m + '_std')}, "
                        f"llem_t95(count({q})::BIGINT - 1) * stddev_samp({q}) / "
                        f"sqrt(count({q})) AS {ident(m + '_ci95')}, "
                        f"stddev_samp({q}) / nullif(avg({q}), 0) AS {ident(m + '_cv')}")
        if "saturated" in self.columns:
            aggs.append("count(*) FILTER (WHERE r.saturated) AS saturated_n")
        join = " JOIN llem_points p ON p.job_id = r.job_id" if paths else ""
        query = (f"SELECT {keys + ', ' if keys else ''}count(*) AS n"
                 f"{''.join(', ' + a for a in aggs)} FROM ({self.valid_runs()}) r{join} "
                 f"WHERE r.campaign = ? AND r.status = 'ok'"
                 f"{' GROUP BY ' + ', '.join(exprs) if exprs else ''}")
        rows = [r for r in self.sql(query) if r["n"]]
        for r in rows:
            for b in paths:
                r[b] = json.loads(r[b]) if r[b] is not None else None
        rows.sort(key=lambda r: [sort_key(r[b]) for b in by])
        return rows

    def close(self) -> None:
        self.con.close()



def config_label(row: dict[str, Any], by: list[str], names: dict[str, str] | None = None) -> str:
    """'batch_size=8, streaming=true' for a row's `by` values."""
    names = names or {}
    return ", ".join(f"{names.get(b, b)}={value(row.get(b))}" for b in by) or "all"
