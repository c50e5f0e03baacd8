"""What `llem query` takes as SQL: its text (or a .sql file), one statement that reads, and
DuckDB's failures as one line that keeps their reason."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from llem.errors import UserError

MAX_SQL_BYTES = 1 << 20  # a .sql file read whole
READS = ("SELECT, WITH, FROM, VALUES, PIVOT, DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN [ANALYZE] "
         "of one of those")
EXPORT = "write files with `llem export CAMPAIGN -o FILE.csv`"
# the fix each refused kind of statement is told (a write's is EXPORT)
FIXES = {
    "SET": "DuckDB's settings are fixed in llem query (profiling_output, log and temp "
           "settings write files)",
    "VARIABLE_SET": "DuckDB's settings are fixed in llem query",
    "PRAGMA": "use its table function in a SELECT (SELECT * FROM pragma_table_info('runs')), "
              "DESCRIBE or SHOW",
    "CALL": "call a table function in a SELECT: SELECT * FROM f(...)",
    "LOAD": "llem query loads no DuckDB extension",
    "EXTENSION": "llem query loads no DuckDB extension",
    "TRANSACTION": "give the query alone",
    "PREPARE": "give the query alone, its values written in",
    "EXECUTE": "give the query alone, its values written in",
}
# first words of a statement that reads, for one DuckDB types MULTI (a PIVOT without IN
# creates enum types first, whatever statement holds it)
QUERY_STARTS = frozenset({"select", "with", "from", "values", "pivot", "unpivot", "describe",
                          "show", "summarize", "table", "("})


def sql_text(sql: str) -> str:
    """The SQL to run: sql itself, or the text of the .sql file it names (see _names_file)."""
    if not _names_file(sql):
        return sql
    path = Path(sql.strip())
    if not path.is_file():  # (a FIFO named q.sql blocked for ever)
        what = "is not a regular file" if path.exists() else "not found"
        raise UserError(f"SQL file {path} {what}: pass SQL text or an existing .sql file")
    if path.stat().st_size > MAX_SQL_BYTES:
        raise UserError(f"SQL file {path} is over {MAX_SQL_BYTES} bytes: is it SQL?")
    data = path.read_bytes()
    try:  # replaced bytes changed a literal silently ('café' matched nothing)
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"SQL file {path}:{line} is not UTF-8 text (byte "
                        f"0x{data[exc.start]:02x}): save it as UTF-8") from None


def _names_file(sql: str) -> bool:
    """Is sql the path of a .sql file? One line ending in .sql that is one word, an existing
    file, or does not start as SQL does: `SELECT 1 AS x -- see q.sql` is SQL."""
    text = sql.strip()
    if "\n" in text or not text.lower().endswith(".sql"):
        return False
    if not text.split(maxsplit=1)[1:]:
        return True
    try:
        if Path(text).is_file():
            return True
    except OSError:  # a name too long for the filesystem is no file
        return False
    try:
        first = duckdb.tokenize(text)[0]
    except (duckdb.Error, IndexError):
        return True
    return not (first[1] == duckdb.token_type.keyword or text.startswith("("))


def reads_only(sql: str) -> None:
    """Refuse, before anything runs, SQL that is not one statement that reads: a COPY ... TO
    put a file into the store; EXPLAIN ANALYZE runs what it explains (EXPLAIN ANALYZE COPY
    wrote); SET and PRAGMA reach settings that write files (profiling_output); INSTALL and
    LOAD fetch code. Of several statements only the last one's rows were shown."""
    try:
        statements = _statements(sql)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {failure(exc)}") from None
    except ValueError:  # a statement type the Python API has no name for (UPDATE EXTENSIONS)
        raise UserError("the SQL holds a statement llem query does not run (one DuckDB's "
                        f"Python API has no name for), and llem query only reads ({READS})"
                        ) from None
    if not statements:
        raise UserError("the SQL holds no statement (only comments?): give a query, e.g. "
                        "llem query \"SELECT * FROM runs\"")
    for i, (text, kind) in enumerate(statements, 1):
        refused = _refused(text, kind)
        if refused:
            which = f"statement {i} of {len(statements)}" if len(statements) > 1 else "the SQL"
            what, fix = refused
            raise UserError(f"{which} is {what}, and llem query only reads ({READS}): {fix}")
    if len(statements) > 1:
        raise UserError(f"the SQL holds {len(statements)} statements, and llem query runs one "
                        "(only the last one's rows were shown): run each on its own")


def _statements(sql: str) -> list[tuple[str, str]]:
    """Each statement of sql: its text and DuckDB's name for its type (ValueError for a type
    the Python API cannot name: UPDATE EXTENSIONS)."""
    return [(s.query, s.type.name) for s in duckdb.extract_statements(sql)]


def _refused(text: str, kind: str) -> tuple[str, str] | None:
    """(what the statement is, how to do it instead), or None for a statement that reads."""
    if kind == "SELECT":
        return None
    if kind == "EXPLAIN" or (kind == "MULTI" and _first_word(text) == "explain"):
        inner = _explained(text)
        try:
            statements = _statements(inner) if inner else []
        except (duckdb.Error, ValueError):
            statements = []
        if len(statements) != 1:
            return "an EXPLAIN of a statement llem query cannot tell", EXPORT
        refused = _refused(*statements[0])
        return None if refused is None else (f"an EXPLAIN of {refused[0]}", refused[1])
    if kind == "MULTI":  # a PIVOT without IN creates enum types first, in whatever holds it
        if _reads(text):
            return None
        first = _first_word(text).upper()
        return f"{_a(first)} {first} statement that writes", EXPORT
    if kind in ("LOAD", "EXTENSION"):
        return "an INSTALL or LOAD statement", FIXES[kind]
    name = kind.replace("_", " ")
    return f"{_a(name)} {name} statement", FIXES.get(kind, EXPORT)


def _a(word: str) -> str:
    return "an" if word[:1] in tuple("AEIOU") else "a"


def _first_word(text: str) -> str:
    """The statement's first word (comments skipped), lower case; '' if none."""
    for pos, kind in duckdb.tokenize(text):
        if kind != duckdb.token_type.comment:
            word = text[pos:].split(None, 1)[0].lower()
            return "(" if word.startswith("(") else word
    return ""


def _explained(text: str) -> str | None:
    """The statement an EXPLAIN [ANALYZE] [(options)] explains, as text (None if unclear): a
    parenthesis at its start is the statement where what follows parses as one ((SELECT 1)),
    else options ((FORMAT json, ANALYZE) COPY ...)."""
    every = duckdb.tokenize(text)
    ends = [pos for pos, _ in every[1:]] + [len(text)]
    starts, words = [], []
    for (pos, kind), end in zip(every, ends):
        if kind != duckdb.token_type.comment:
            starts.append(pos)
            words.append(text[pos:end].strip().lower())
    if not words or words[0] != "explain":
        return None
    depth = 0
    for start, word in zip(starts[1:], words[1:]):
        if depth == 0 and word not in ("analyze", "analyse") and \
                (not word.startswith("(") or _one_statement(text[start:])):
            return text[start:]
        depth += word.count("(") - word.count(")")
    return None


def _one_statement(text: str) -> bool:
    try:
        return len(_statements(text)) == 1
    except (duckdb.Error, ValueError):
        return False


def _reads(text: str) -> bool:
    """Is a statement DuckDB types MULTI a query? It starts as one does, and it parses as a
    subquery (a COPY (PIVOT ...) TO or an INSERT ... PIVOT does not)."""
    if _first_word(text) not in QUERY_STARTS:
        return False
    try:
        wrapped = _statements(f"SELECT * FROM (\n{text}\n)")
    except (duckdb.Error, ValueError):
        return False
    return len(wrapped) == 1 and wrapped[0][1] in ("SELECT", "MULTI")


# DuckDB's advice after an error: to install an extension or switch settings llem query
# keeps fixed
ADVICE = re.compile(r"(?is)\s*(?:Please try installing|Alternatively, consider enabling).*$")


def failure(exc: BaseException) -> str:
    """DuckDB's error as one line with its reason: its lines joined, up to the quoted SQL
    (`LINE 1: ...` and a caret); advice to install an extension is replaced by why none is
    (the first line alone was 'An error occurred while trying to automatically install the
    required extension 'httpfs:')."""
    text = str(exc)
    cut = ADVICE.sub("", text)
    lines = []
    for line in cut.splitlines():
        if re.match(r"\s*LINE \d+:", line):
            break
        if line.strip():
            lines.append(line.strip())
    message = " ".join(lines) or text.strip()
    if cut != text or re.search(r"(?i)\bextension\b.*\b(?:install|load)", message):
        remote = " (copy the file to this machine first)" if "File " in message else ""
        message = f"{message.rstrip('.')}; llem query loads no DuckDB extension{remote}"
    elif "configuration has been locked" in message:
        message = f"{message.rstrip('.')}; llem query's DuckDB settings are fixed (it only reads)"
    return message
