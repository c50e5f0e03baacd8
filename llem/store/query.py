"""DuckDB over the store: views runs, requests, samples (and stats across cycles)."""

from __future__ import annotations

from typing import Any

import duckdb
import duckdb.func
import pyarrow as pa

from llem.measure.stats import t_critical
from llem.store.listing import Listing
from llem.store.schema import SCHEMAS, TABLES
from llem.store.store import Store
from llem.store.validity_fields import with_valid

STATS_METRICS = ("tokens_per_s", "energy_j", "energy_per_token_j", "energy_net_per_token_j",
                 "avg_power_w",
                 "latency_p50_s", "latency_p99_s", "ttft_p50_s", "itl_p50_s", "duration_s")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def connect(store: Store) -> duckdb.DuckDBPyConnection:
    """A fresh connection (one per thread) with the store's tables as views."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # it writes to stdout: not in CSV/JSON
    # Every query over a view reads each file's footer again; caching them (per connection)
    # saved a third of each pass over 1,000 runs files (benchmarks/query.py).
    con.execute("SET parquet_metadata_cache = true")
    try:
        _views(con, store)
    except BaseException:
        con.close()
        raise
    return con


def _views(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    con.create_function("llem_t95", t95, [duckdb.sqltypes.BIGINT], duckdb.sqltypes.DOUBLE,
                        null_handling=duckdb.func.SPECIAL)
    runs: Listing | None = None
    for table in TABLES:  # runs first: requests and samples are filtered by its listing
        # complete llem files only: no temp, partial or foreign
        listed = store.listing(table, runs=runs)
        if table == "runs":
            runs = listed
        if not listed.files:
            con.register(f"_{table}_empty", SCHEMAS[table].empty_table())
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM _{table}_empty")
            continue
        if table == "runs" and store.local:  # runs rows are the done marks: checked first
            store.check_versions(_versions(con, ", ".join(_sql_str(f) for f in listed.files)))
        plain = [f for f in listed.files if f not in listed.stale]
        parts = [(plain, "")] if plain else []
        for path, pairs in sorted(listed.stale.items()):  # compacted files with rows rewritten
            keys = ", ".join(_sql_str(f"{j}-c{c}") for j, c in sorted(pairs))
            parts.append(([path], f" WHERE concat(job_id, '-c', cycle) NOT IN ({keys})"))
        selects = [f"SELECT * FROM {_source(con, store, f'_{table}_{i}', files)}{where}"
                   for i, (files, where) in enumerate(parts)]
        con.execute(f"CREATE VIEW {table} AS " + " UNION ALL BY NAME ".join(selects))
        if table == "runs" and not store.local:
            lo, hi = con.execute("SELECT min(schema_version), max(schema_version) "
                                 "FROM runs").fetchall()[0]
            store.check_versions([v for v in (lo, hi) if v is not None])
    # stats: the cycles whose energy can be trusted (llem.store.validity_fields.VALID_SQL),
    # with a count of those left out; stats_all: every ok cycle. Grouped by boundary too,
    # so energies of different boundaries never mix.
    have = {r[0] for r in con.execute("DESCRIBE SELECT * FROM runs").fetchall()}
    src = with_valid("runs", have)
    for view, keep in (("stats", "_valid"), ("stats_all", "true")):
        f = f" FILTER (WHERE {keep})"
        metrics = ",\n  ".join(
            f"avg({m}){f} AS {m}_mean, stddev_samp({m}){f} AS {m}_std, "
            f"stddev_samp({m}){f} / nullif(avg({m}){f}, 0) AS {m}_cv, "
            f"llem_t95(count({m}){f}::BIGINT - 1) * stddev_samp({m}){f} / "
            f"sqrt(count({m}){f}) AS {m}_ci95"
            for m in STATS_METRICS)
        con.execute(f"""CREATE VIEW {view} AS SELECT campaign, job_id, boundary,
  any_value(backend) AS backend, any_value(model) AS model, any_value(dtype) AS dtype,
  any_value(batch_size) AS batch_size, any_value(max_new_tokens) AS max_new_tokens,
  count(*){f} AS cycles, count(*) FILTER (WHERE NOT _valid) AS invalid_cycles,
  {metrics}
FROM ({src}) WHERE status = 'ok' GROUP BY campaign, job_id, boundary""")


def _source(con: duckdb.DuckDBPyConnection, store: Store, name: str, files: list[str]) -> str:
    """What a view reads the files through: read_parquet locally, elsewhere a pyarrow
    dataset over the store's own filesystem (s3://, gs://, ...)."""
    if store.local:
        listed = ", ".join(_sql_str(f) for f in files)
        return f"read_parquet([{listed}], union_by_name=true, hive_partitioning=false)"
    import pyarrow.dataset as ds

    dataset = ds.dataset(files, filesystem=store.fs, format="parquet")
    # the first file's schema alone would drop the engine_* columns only others have; this
    # reads every footer, as union_by_name does locally (`llem compact` leaves few)
    schema = pa.unify_schemas([f.physical_schema.remove_metadata()
                               for f in dataset.get_fragments()], promote_options="permissive")
    con.register(name, ds.dataset(files, filesystem=store.fs, format="parquet", schema=schema))
    return name


def _versions(con: duckdb.DuckDBPyConnection, listed: str) -> list[int]:
    """The lowest and highest schema_version of the listed files. That one column is read
    without union_by_name: unifying ~140 columns over 1,000 one-row runs files made the
    check 5x slower (0.6 vs 0.11 s, benchmarks/query.py). A file without the column (a
    foreign one, `llem doctor STORE` names it) reads as null through union_by_name."""
    for union in ("false", "true"):
        try:
            lo, hi = con.execute(
                "SELECT min(schema_version), max(schema_version) FROM read_parquet("
                f"[{listed}], union_by_name={union}, hive_partitioning=false)").fetchall()[0]
            break
        except duckdb.Error:
            if union == "true":
                raise
    return [v for v in (lo, hi) if v is not None]


def t95(df: int | None) -> float | None:
    """Two-sided 95% Student-t critical value for df degrees of freedom."""
    return t_critical(df) if df is not None else None


def run_sql(store: Store, sql: str) -> pa.Table:
    """The query's rows; once more, on fresh views, if a listed file vanished meanwhile
    (`llem compact` deletes the files it merged once the merged file is in place)."""
    try:
        return _run_sql(store, sql)
    except duckdb.IOException as exc:
        if "No files found" not in str(exc):
            raise
        return _run_sql(store, sql)


def _run_sql(store: Store, sql: str) -> pa.Table:
    con = connect(store)
    try:
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    finally:
        con.close()


def campaign_counts(store: Store) -> list[dict[str, Any]]:
    """Per campaign: jobs ok / failed, energy, and the time span of its results."""
    t = run_sql(store, """SELECT campaign, count(*) FILTER (status = 'ok') AS ok,
        count(*) FILTER (status = 'failed') AS failed, count(DISTINCT job_id) AS configs,
        sum(energy_j) AS energy_j, min(started_at) AS first, max(finished_at) AS last
        FROM runs GROUP BY campaign ORDER BY campaign""")
    return t.to_pylist()
