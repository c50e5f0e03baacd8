"""What `llem query` prints of a value: credentials masked in every value of every type, bytes
as DuckDB writes them, and no control character or markup reaching the terminal raw.

SQL reads any file DuckDB can: read_blob('/proc/self/environ') printed HF_TOKEN (bytes were
not masked, only text), a NUL or ESC went to the terminal as it was, and a value like
'[/bold]' was taken as rich markup (a traceback).
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

from llem.credentials import redact

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows;
# newline and tab stay (EXPLAIN's plan is lines)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                     r"\u2066-\u2069]")


def masked(value: Any) -> Any:
    """value with credentials masked wherever it holds text: strings, bytes (as text, see
    blob_text), and the items, keys and values of lists, structs and maps."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return blob_text(bytes(value))
    if isinstance(value, (list, tuple)):
        return [masked(v) for v in value]
    if isinstance(value, dict):
        return {masked(k): masked(v) for k, v in value.items()}
    return value


def blob_text(data: bytes) -> str:
    """data as DuckDB writes a BLOB (printable ASCII as it is, every other byte \\xNN), its
    credentials masked first in its UTF-8 reading (a token is masked in either form)."""
    text = redact(data.decode("utf-8", "surrogateescape"))
    out = []
    for ch in text:
        if " " <= ch <= "~" and ch not in "\\'\"":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def cell(value: Any) -> Text:
    """A table cell: '-' for null, floats to 4 significant digits, control characters as
    escapes; a Text, never markup."""
    if value is None:
        return Text("-")
    if isinstance(value, float):
        return Text(f"{value:.4g}")
    return Text(escaped(str(value)))


def escaped(text: str) -> str:
    """text with control characters (but newline and tab) as escapes, for a terminal."""
    return CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)
