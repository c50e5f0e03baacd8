"""DuckDB over the store: views runs, requests, samples (the newest measurement of each job
and cycle), runs_all, requests_all, samples_all (every measurement), sessions, and stats
across cycles.

A job and cycle measured more than once (`llem run --rerun`, a failed job run again on
resume) has one runs row per measurement (session_id). `runs` keeps one of them: the newest
ok one, else the newest (sessions sort by start time; rows of stores written before
sessions count as oldest), so a failed rerun does not hide a good measurement and a job the
view shows ok is one resume skips; `requests` and `samples` keep the rows of the
measurement `runs` shows. Without a second measurement anywhere the views are the `*_all`
views as they are, at no cost. The views read only files that read whole and are llem's
(Store.listings); each file left out is one warning (Store.on_warning).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import duckdb
import duckdb.func
import pyarrow as pa

from llem.measure.stats import t_critical
from llem.store.listing import Listing, job_cycle
from llem.store.schema import SCHEMAS, TABLES
from llem.store.store import Store
from llem.store.validity_fields import with_valid

STATS_METRICS = ("tokens_per_s", "energy_j", "energy_per_token_j", "energy_net_per_token_j",
                 "avg_power_w",
                 "latency_p50_s", "latency_p99_s", "ttft_p50_s", "itl_p50_s", "duration_s")
MEASURED = ("runs", "requests", "samples")  # a view of every measurement (_all), and one of
# the newest
NEWEST = ("PARTITION BY campaign, job_id, cycle ORDER BY (status = 'ok') DESC, "
          "session_id DESC NULLS LAST, finished_at DESC NULLS LAST")
BATCH_ROWS = 10_000  # rows a streamed query hands over at a time (stream_sql)
T = TypeVar("T")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def connect(store: Store) -> duckdb.DuckDBPyConnection:
    """A fresh connection (one per thread) with the store's tables as views, its settings
    locked (see LOCKED)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # it writes to stdout: not in CSV/JSON
    # Every query over a view reads each file's footer again; caching them (per connection)
    # saved a third of each pass over 1,000 runs files (benchmarks/query.py).
    con.execute("SET parquet_metadata_cache = true")
    try:
        for setting in LOCKED:
            con.execute(setting)
        _views(con, store)
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


# No extension is installed or loaded on the way (a read_csv('http://...') downloaded httpfs
# into ~/.duckdb): the store's own files are read locally, or through pyarrow's filesystem
# (s3://, gs://). Locked after the views: SQL changes no setting, and settings and table
# functions that write (profiling_output, enable_logging(storage := 'file')) are refused.
LOCKED = ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
          "SET allow_community_extensions = false")


def _views(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    con.create_function("llem_t95", t95, [duckdb.sqltypes.BIGINT], duckdb.sqltypes.DOUBLE,
                        null_handling=duckdb.func.SPECIAL)
    listed = store.listings()  # files that read whole and are llem's, measurements whole
    for table in TABLES:
        name = f"{table}_all" if table in MEASURED else table
        files = listed[table]
        if not files.files:
            con.register(f"_{table}_empty", SCHEMAS[table].empty_table())
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{table}_empty")
            continue
        if table == "runs" and store.local:  # runs rows are the done marks: checked first
            store.check_versions(_versions(con, ", ".join(_sql_str(f) for f in files.files)))
        con.execute(f"CREATE VIEW {name} AS {_union(con, store, table, files)}")
        if table == "runs" and not store.local:
            lo, hi = con.execute("SELECT min(schema_version), max(schema_version) "
                                 "FROM runs_all").fetchall()[0]
            store.check_versions([v for v in (lo, hi) if v is not None])
    if _remeasured(listed["runs"]):
        con.execute(f"CREATE VIEW runs AS SELECT * FROM runs_all QUALIFY "
                    f"row_number() OVER ({NEWEST}) = 1")
        for table in ("requests", "samples"):
            con.execute(f"""CREATE VIEW {table} AS SELECT t.* FROM {table}_all t SEMI JOIN runs r
  ON t.campaign = r.campaign AND t.job_id = r.job_id AND t.cycle = r.cycle
  AND t.session_id IS NOT DISTINCT FROM r.session_id""")
    else:
        for table in MEASURED:
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM {table}_all")
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


def _remeasured(runs: Listing) -> bool:
    """Does any job and cycle have more than one measurement (a runs row per session)?"""
    seen: Counter[tuple[str, str, int]] = Counter()
    for name in runs.done or ():
        folder, base = name.rsplit("/", 1)
        jc = job_cycle(base)
        if jc is not None:
            seen[(folder, jc[0], jc[1])] += 1
    return any(n > 1 for n in seen.values())


def _union(con: duckdb.DuckDBPyConnection, store: Store, table: str, listed: Listing) -> str:
    """SELECT of the table's rows over its files: compacted files with measurements left out
    read with a WHERE; session_id (null) added where no file has it (a store written before)."""
    plain = [f for f in listed.files if not listed.dropped(f)]
    parts = [(plain, "")] if plain else []
    for path in sorted(f for f in listed.files if listed.dropped(f)):
        keys = ", ".join(_sql_str(k) for k in sorted(listed.dropped(path)))
        src = _source(con, store, f"_{table}_probe", [path])
        has = "session_id" in _columns(con, f"SELECT * FROM {src}")
        key = ("concat(job_id, '-c', cycle, coalesce('-' || session_id, ''))" if has
               else "concat(job_id, '-c', cycle)")
        parts.append(([path], f" WHERE {key} NOT IN ({keys})"))
    selects = [f"SELECT * FROM {_source(con, store, f'_{table}_{i}', files)}{where}"
               for i, (files, where) in enumerate(parts)]
    union = " UNION ALL BY NAME ".join(selects)
    if table in MEASURED:
        named = any((jc := job_cycle(f.rsplit("/", 1)[-1])) is not None and jc[2]
                    for f in listed.files)
        if not named and "session_id" not in _columns(con, union):
            union = f"SELECT *, NULL::VARCHAR AS session_id FROM ({union})"
    return union


def _columns(con: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE {sql}").fetchall()}


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
    check 5x slower (0.6 vs 0.11 s, benchmarks/query.py)."""
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
    """The query's rows, whole (see _retried)."""
    return _retried(store, lambda: _run_sql(store, sql))


def stream_sql(store: Store, sql: str, rows: int = BATCH_ROWS,
               shape: Callable[[Any], Any] | None = None,
               ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The query's columns, and its rows in batches of about `rows`: what a reader holds is
    one batch, whatever the query returns (`SELECT * FROM requests` of a large campaign was
    read whole, then turned into Python objects whole). Retried as run_sql is until the
    first batch is read; a failure after it is raised as a duckdb.Error. The connection
    closes when the batches are read out (or the iterator is closed). shape: what the
    query's relation becomes before it is read (llem.store.printable)."""
    return _retried(store, lambda: _open_stream(store, sql, rows, shape))


def _retried(store: Store, attempt: Callable[[], T]) -> T:
    """attempt(), once more on fresh views if a listed file vanished meanwhile (`llem
    compact` deletes the files it merged once the merged file is in place), or if a file
    that passed its check failed to read after all (changed in place under the same size
    and times: it is recorded as damaged, warned about and left out)."""
    for n in range(4):
        try:
            return attempt()
        except duckdb.Error as exc:
            if n == 3:
                raise
            if isinstance(exc, duckdb.IOException) and "No files found" in str(exc):
                continue
            if isinstance(exc, SQL_ERRORS):  # the query's own mistake: no file to blame
                raise
            paths = _named_files(store, str(exc))
            for path in paths:
                store.damaged(path, exc)
            if not paths and not store.recheck():  # DuckDB did not say which: read them all
                raise
    raise AssertionError("unreachable")


SQL_ERRORS = (duckdb.ParserException, duckdb.SyntaxException, duckdb.BinderException,
              duckdb.CatalogException, duckdb.ConversionException, duckdb.OutOfRangeException,
              duckdb.TypeMismatchException, duckdb.InvalidTypeException,
              duckdb.NotImplementedException, duckdb.InterruptException,
              duckdb.OutOfMemoryException)


def _named_files(store: Store, message: str) -> list[str]:
    """The store's data files a DuckDB error names (it quotes the file it failed on)."""
    if not store.local:
        return []
    root = re.escape(store.root.rstrip("/"))
    return sorted(set(re.findall(rf"({root}/[^\s\"']+?\.parquet)", message)))


def _run_sql(store: Store, sql: str) -> pa.Table:
    con = connect(store)
    try:
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    finally:
        con.close()


def _open_stream(store: Store, sql: str, rows: int, shape: Callable[[Any], Any] | None,
                 ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    con = connect(store)
    try:
        rel = con.sql(sql)
        if rel is None:  # a statement with no rows: no columns
            con.close()
            return pa.schema([]), iter(())
        reader = (shape(rel) if shape else rel).to_arrow_reader(rows)
        first = _next_batch(reader)
    except BaseException:
        con.close()
        raise
    return reader.schema, _batches(con, reader, first)


def _batches(con: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader,
             first: pa.RecordBatch | None) -> Iterator[pa.RecordBatch]:
    try:
        batch = first
        while batch is not None:
            yield batch
            batch = _next_batch(reader)
    finally:
        con.close()


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    """The reader's next batch, None at its end; DuckDB's errors while it streams reach
    pyarrow as OSError ('IO Error: ...', 'Invalid Input Error: ...'): raised as a
    duckdb.Error (IOException for an IO Error, else InvalidInputException), so callers
    (and _retried) see one kind of failure."""
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except OSError as exc:
        message = str(exc)
        kind = duckdb.IOException if message.startswith("IO Error") else \
            duckdb.InvalidInputException
        raise kind(message) from None


def campaign_counts(store: Store) -> list[dict[str, Any]]:
    """Per campaign: jobs ok / failed, energy, and the time span of its results."""
    t = run_sql(store, """SELECT campaign, count(*) FILTER (status = 'ok') AS ok,
        count(*) FILTER (status = 'failed') AS failed, count(DISTINCT job_id) AS configs,
        sum(energy_j) AS energy_j, min(started_at) AS first, max(finished_at) AS last
        FROM runs GROUP BY campaign ORDER BY campaign""")
    return t.to_pylist()
