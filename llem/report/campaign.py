"""One campaign in the store, as the reading commands need it: its swept parameters, its
environment, and mean / std / 95% CI of metrics per group of configurations."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from llem.config.axes import dotted
from llem.errors import UserError
from llem.store.query import connect
from llem.store.store import Store

# Columns that describe what was run (config_columns in llem.harness.result); engine_* are added.
CONFIG_COLUMNS = ("backend", "model", "dtype", "batch_size", "max_new_tokens",
                  "min_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty",
                  "seed", "max_input_tokens", "streaming", "num_prompts", "dataset_source",
                  "dataset_path", "gpus_per_job", "min_window_s", "generate_json")
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

    @classmethod
    def open(cls, store: Store, name: str) -> Campaign:
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
        return cls(store, name, con, cols)

    def sql(self, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a query as dicts."""
        cur = self.con.execute(query, [self.name, *(params or [])])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c, t in self.columns.items()
                if t.split("(")[0] in NUMERIC_TYPES and c not in ("schema_version", "cycle")]

    def check_columns(self, names: list[str], what: str) -> list[str]:
        """Columns of the runs view, or a UserError with a suggestion."""
        for n in names:
            if n not in self.columns:
                close = difflib.get_close_matches(n, list(self.columns), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise UserError(f"unknown {what} column '{n}': {hint}it must be a column of "
                                f"the runs view (swept here: {', '.join(self.swept()) or 'none'})")
        return names

    def swept(self) -> list[str]:
        """Config columns with more than one value in this campaign: the grid's axes."""
        cands = [c for c in self.columns if c in CONFIG_COLUMNS or (c.startswith("engine_")
                 and c != "engine_json")]
        if not cands:
            return []
        counts = ", ".join(f"count(DISTINCT {ident(c)}) + max(CASE WHEN {ident(c)} IS NULL "
                           f"THEN 1 ELSE 0 END) AS {ident(c)}" for c in cands)
        row = self.sql(f"SELECT {counts} FROM runs WHERE campaign = ?")[0]
        return [c for c in cands if (row[c] or 0) > 1]

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
        """Parameters every job of the campaign shared (from point_json), as dotted paths."""
        points = [json.loads(r["p"]) for r in self.sql(
            "SELECT DISTINCT point_json AS p FROM runs WHERE campaign = ? ORDER BY p")]
        flat = [dotted(p) for p in points]
        if not flat:
            return {}
        return {k: json.dumps(v) if not isinstance(v, str) else v
                for k, v in sorted(flat[0].items()) if all(f.get(k, v) == v for f in flat)}

    def counts(self) -> dict[str, Any]:
        return self.sql("""SELECT count(*) FILTER (status = 'ok') AS ok,
            count(*) FILTER (status <> 'ok') AS failed, count(DISTINCT job_id) AS configs,
            max(cycle) + 1 AS cycles, sum(energy_j) AS energy_j,
            CAST(min(started_at) AS VARCHAR) AS first,
            CAST(max(finished_at) AS VARCHAR) AS last FROM runs WHERE campaign = ?""")[0]

    def group_stats(self, by: list[str], metrics: list[str]) -> list[dict[str, Any]]:
        """Per group of `by` values, over its ok runs (cycles): n, and for each metric its
        mean, std, 95% CI half-width (Student t) and CV."""
        keys = ", ".join(ident(b) for b in by)
        aggs = []
        for m in metrics:
            q = ident(m)
            aggs.append(f"count({q}) AS {ident(m + '_n')}, avg({q}) AS {ident(m + '_mean')}, "
                        f"stddev_samp({q}) AS {ident(m + '_std')}, "
                        f"llem_t95(count({q})::BIGINT - 1) * stddev_samp({q}) / "
                        f"sqrt(count({q})) AS {ident(m + '_ci95')}, "
                        f"stddev_samp({q}) / nullif(avg({q}), 0) AS {ident(m + '_cv')}")
        select = f"{keys + ', ' if keys else ''}count(*) AS n"
        query = (f"SELECT {select}{''.join(', ' + a for a in aggs)} FROM runs "
                 f"WHERE campaign = ? AND status = 'ok'"
                 f"{' GROUP BY ' + keys + ' ORDER BY ' + keys if keys else ''}")
        rows = self.sql(query)
        return [r for r in rows if r["n"]]

    def close(self) -> None:
        self.con.close()



def config_label(row: dict[str, Any], by: list[str]) -> str:
    """'batch_size=8, streaming=True' for a row's `by` values."""
    return ", ".join(f"{b}={row.get(b)}" for b in by) or "all"
