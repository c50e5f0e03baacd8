"""Read a grid file safely and remember the line of every key.

yaml.safe_load silently keeps the last of duplicate keys, expands alias bombs without limit
and forgets where each value came from. We compose the node graph ourselves so that
duplicates are errors, expansion is bounded, and errors can name the line.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import stat
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from llem.credentials import looks_secret, mask_shapes
from llem.errors import ConfigError, Problems

MAX_FILE_BYTES = 1 << 20  # a grid file is hand-written; anything bigger is a mistake
MAX_NODES = 200_000  # bounded expansion of anchors/aliases (billion-laughs guard)
MAX_CHARS = 1 << 22  # characters of text after expanding aliases (4x a file: one aliased often)
MAX_DEPTH = 64  # nesting deeper than this is a mistake (and would exhaust the stack)
MAX_SHOWN = 60  # characters of a value quoted in a message
INT64 = (-(2**63), 2**63 - 1)  # the widest whole number the store holds
Y = "tag:yaml.org,2002:"
MERGE_TAG, PLAIN_TAGS = Y + "merge", (Y + "map", Y + "seq")
# Scalar tags that build plain data (text, numbers, booleans, null); anything else written
# (!!binary, !!timestamp, !!set, python/...) is refused: a value is what it looks like.
SCALAR_TAGS = tuple(Y + t for t in ("str", "int", "float", "bool", "null"))

Loc = tuple[str | int, ...]


class SourceMap:
    """Where each key of a parsed file was written: loc tuple -> 1-based line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.set_by: dict[Loc, str] = {}  # values laid over the file (flags): what set them

    def setter(self, loc: Loc) -> str | None:
        """What set loc (or the value it is part of) instead of the file: `--batch-size 4`."""
        return next((label for at, label in self.set_by.items() if loc[:len(at)] == at), None)

    def line(self, loc: Loc) -> int | None:
        """The line of loc, or of its nearest written parent (None for a flag's value)."""
        while loc and self.setter(loc) is None:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def error(self, loc: Loc, message: str, hint: str | None = None,
              line: int | None = None) -> ConfigError:
        if (label := self.setter(loc)) is not None:  # not in the file: the flag, no line
            return ConfigError(message, file=label, hint=hint)
        key = _visible(".".join(str(p) for p in loc)) or None
        return ConfigError(message, file=self.file, key=key, line=line or self.line(loc),
                           hint=hint)


def _visible(key: str) -> str:
    """key with each character that is not printable ASCII written as an escape: a Cyrillic
    a (U+0430) or a zero-width space in batch_size is why it is unknown, and must show."""
    return "".join(ch if " " <= ch <= "~" else ascii(ch)[1:-1] for ch in key)


def shown(value: Any) -> str:
    """value quoted for a message: short, and never a token-shaped string."""
    text = mask_shapes(repr(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Parse path into plain Python data plus a SourceMap; every failure is a ConfigError."""
    name = str(path)
    too_big = ConfigError(f"file is over the {MAX_FILE_BYTES}-byte limit for a grid file",
                          file=name, hint="split it, or list values, not data")
    not_a_file = ConfigError("is not a regular file (a pipe, device or socket)", file=name,
                             hint="give the path of a grid file")
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError("is a folder, not a grid file", file=name)
        if not stat.S_ISREG(st.st_mode):
            raise not_a_file  # a FIFO would block the open, a device never end
        if st.st_size > MAX_FILE_BYTES:
            raise too_big  # refused before reading a byte
        # non-blocking open: a file swapped for a FIFO after the check cannot hang us
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise not_a_file
            raw = f.read(MAX_FILE_BYTES + 1)  # bounded read
    except FileNotFoundError:
        raise ConfigError("file not found", file=name) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a grid file", file=name) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot read file: {why}", file=name) from None
    if len(raw) > MAX_FILE_BYTES:
        raise too_big
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", file=name,
                          line=line, hint="save the file as UTF-8") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse YAML text (see read_yaml)."""
    smap = SourceMap(name)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except _TooDeep as exc:
        raise ConfigError(f"values are nested more than {MAX_DEPTH} levels deep", file=name,
                          line=_line(exc.mark)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {_problem(exc)}", file=name,
                          line=_line(getattr(exc, "problem_mark", None))) from None
    except RecursionError:
        raise ConfigError(f"values are nested too deeply (the limit is {MAX_DEPTH} levels)",
                          file=name) from None
    if node is None:
        return None, smap
    builder = _Builder(smap)
    data = builder.build(node, ())
    builder.problems.check()
    return data, smap


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer stops at MAX_DEPTH instead of exhausting the stack."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _problem(exc: yaml.YAMLError) -> str:
    """One line: the problem, and what was being parsed where it started."""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
    problem = " ".join(str(problem).split())
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    problem_mark = getattr(exc, "problem_mark", None)
    if context and mark is not None and (problem_mark is None or mark.line != problem_mark.line):
        problem += f" ({' '.join(str(context).split())} started on line {mark.line + 1})"
    return problem


def _scalar_problem(node: yaml.Node, exc: Exception) -> str:
    if isinstance(exc, yaml.YAMLError):
        return mask_shapes(_problem(exc))
    tag = str(node.tag).removeprefix(Y)
    return f"{shown(node.value)} is not a valid !!{tag}"


def _surprising_number(text: str, value: int | float) -> str | None:
    """Why a plain number is not the number it looks like: YAML 1.1 reads a leading 0 as
    octal (010 is 8) and colons as base 60 (1:30 is 90)."""
    digits = text.lstrip("+-")
    if ":" in digits:
        return f"{text} is a base-60 number in YAML ({shown(value)})"
    if isinstance(value, int) and len(digits) > 1 and digits[0] == "0" and \
            digits[1] in "0123456789_":
        return f"{text} is an octal number in YAML ({shown(value)})"
    return None


def _same_node(a: yaml.Node, b: yaml.Node) -> bool:
    """Two scalars written alike (the same value merged from two maps is no conflict)."""
    return isinstance(a, yaml.ScalarNode) and isinstance(b, yaml.ScalarNode) and \
        a.tag == b.tag and a.value == b.value


def _binary_secret(node: yaml.ScalarNode) -> bool:
    """Does a !!binary value decode to something shaped like a credential?"""
    try:
        raw = base64.decodebytes("".join(str(node.value).split()).encode("ascii"))
    except (binascii.Error, ValueError):
        return False
    return looks_secret("", raw.decode("utf-8", "replace"))


class _Builder:
    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.count = 0
        self.chars = 0
        self.scalar_loader = yaml.SafeLoader("")
        self.active: set[int] = set()  # nodes being built: an alias to one is a cycle
        self.merged: dict[int, list[tuple[str, yaml.Node, yaml.Node]]] = {}
        self.problems = Problems()  # independent mistakes, all reported
        self.fail = self.problems.add  # remember a mistake and go on

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise ConfigError(f"more than {MAX_NODES} values after expanding anchors/aliases",
                              file=self.smap.file, line=_line(node.start_mark),
                              hint="an alias bomb? write the values out")
        if len(loc) > MAX_DEPTH:
            raise self.smap.error(loc[:3], f"values are nested more than {MAX_DEPTH} levels "
                                  "deep", line=_line(node.start_mark))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, loc)
        if node.tag not in PLAIN_TAGS:
            self.fail(self.smap.error(loc, f"unsupported YAML tag '{node.tag}'",
                                      hint="remove the tag", line=_line(node.start_mark)))
            return None
        if id(node) in self.active:
            raise self.smap.error(loc, "an alias refers to the value that contains it",
                                  hint="a value cannot include itself",
                                  line=_line(node.start_mark))
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            out = []
            for i, item in enumerate(node.value):
                self.smap.lines.setdefault(loc + (i,), item.start_mark.line + 1)
                out.append(self.build(item, loc + (i,)))
            return out
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        """A plain value (text, number, boolean, null); anything else is a mistake (None)."""
        line = _line(node.start_mark)
        if node.tag in (MERGE_TAG, Y + "value"):  # '<<' or '=' written as a value: text
            return str(node.value)
        if node.tag == Y + "binary" and _binary_secret(node):
            self.fail(self.smap.error(loc, "a !!binary value that decodes to a credential; "
                                      "llem does not take credentials from grid files",
                                      hint="set HF_TOKEN (or another credential variable) in "
                                      "the environment, or LLEM_SECRETS_FILE", line=line))
            return None
        if node.tag not in SCALAR_TAGS:
            what = "a date or time" if node.tag == Y + "timestamp" else \
                f"unsupported YAML tag '{node.tag}'"
            hint = "quote it to write text" if node.tag == Y + "timestamp" else \
                "write a plain value: text, a number, true/false"
            self.fail(self.smap.error(loc, what, hint=hint, line=line))
            return None
        try:
            value = self.scalar_loader.construct_object(node, deep=True)
        except Exception as exc:  # a tag the value does not fit (!!int abc)
            self.fail(self.smap.error(loc, f"bad value: {_scalar_problem(node, exc)}",
                                      line=line))
            return None
        if isinstance(value, str):
            self.chars += len(value)
            if self.chars > MAX_CHARS:
                raise ConfigError(f"more than {MAX_CHARS} characters of text after expanding "
                                  "anchors/aliases", file=self.smap.file, line=line,
                                  hint="write the values out, or point at a file")
        elif isinstance(value, float) and not math.isfinite(value):
            self.fail(self.smap.error(loc, f"{node.value} is not a finite number",
                                      hint="write a number; .inf and .nan cannot be stored",
                                      line=line))
            return None
        elif isinstance(value, int | float) and not isinstance(value, bool) and \
                node.style is None and (why := _surprising_number(str(node.value), value)):
            self.fail(self.smap.error(loc, why, hint="write the number you mean in decimal, "
                                      "or quote it to write text", line=line))
            return None
        elif isinstance(value, int) and not isinstance(value, bool) and \
                not INT64[0] <= value <= INT64[1]:
            self.fail(self.smap.error(loc, f"{shown(value)} is outside the whole numbers the "
                                      "store holds (64-bit)", line=line))
            return None
        return value

    def _key(self, key_node: yaml.Node, loc: Loc) -> str | None:
        """The key's text, or None (its mistake remembered)."""
        line = _line(key_node.start_mark)
        if not isinstance(key_node, yaml.ScalarNode):
            self.fail(self.smap.error(loc, "a key must be a plain value, not a list or map",
                                      line=line))
            return None
        if key_node.tag not in SCALAR_TAGS:  # never shown: !!binary may hide a token
            secret = key_node.tag == Y + "binary" and _binary_secret(key_node)
            self.fail(self.smap.error(loc, "a key that decodes to a credential" if secret
                                      else f"a key with the YAML tag '{key_node.tag}'",
                                      hint="write the key as plain text", line=line))
            return None
        try:
            key = self.scalar_loader.construct_object(key_node)
        except Exception as exc:
            self.fail(self.smap.error(loc, f"bad key: {_scalar_problem(key_node, exc)}",
                                      line=line))
            return None
        if not isinstance(key, str | int) or isinstance(key, bool):
            # a boolean or float key would become the text 'True' or '0.5' silently
            why = " (yes/no/on/off/true/false are YAML booleans)" if isinstance(key, bool) \
                else ""
            self.fail(self.smap.error(loc, f"a key must be text or a whole number (got "
                                      f"{shown(key)}{why})", hint="quote it to write text",
                                      line=line))
            return None
        if isinstance(key, str) and any(unicodedata.category(c) == "Cc" for c in key):
            self.fail(self.smap.error(loc + (key,), "a key cannot hold control characters "
                                      "(a tab, a newline, an escape)", hint="write a plain "
                                      "name", line=line))
            return None
        return str(key)

    def _entries(self, node: yaml.MappingNode, loc: Loc) -> list[tuple[str, yaml.Node,
                                                                       yaml.Node]]:
        """The mapping's (key, key node, value node) with merge keys (<<: *a) resolved.

        Explicit keys override merged ones; among merged mappings the first wins. Each
        mapping is resolved once and deduplicated, so nested merges cannot blow up. A
        duplicate key is a mistake (the first is kept); a key that is a mistake is left out.
        """
        if id(node) in self.merged:
            return self.merged[id(node)]
        self.merged[id(node)] = []  # a merge that reaches back here adds nothing
        explicit: dict[str, yaml.Node] = {}
        keys: list[tuple[str | None, yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                keys.append((None, key_node, value_node))
                continue
            key = self._key(key_node, loc)
            if key is None:
                continue
            if key in explicit:
                first = _line(explicit[key].start_mark)
                self.fail(self.smap.error(loc + (key,), f"duplicate key (first written on "
                                          f"line {first})", hint="keep one of them",
                                          line=_line(key_node.start_mark)))
                continue
            explicit[key] = key_node
            keys.append((key, key_node, value_node))
        entries: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: dict[str, tuple[yaml.Node, yaml.Node]] = {}  # merged key -> its nodes
        for key, key_node, value_node in keys:
            if key is not None:
                entries.append((key, key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                else [value_node]
            said = False  # <<: [1, 2] is one mistake, said once
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    if not said:
                        self.fail(self.smap.error(loc, "'<<' (merge) takes a map or a list "
                                                  "of maps", line=_line(src.start_mark)))
                    said = True
                    continue
                for k, kn, vn in self._entries(src, loc):
                    if k in explicit:
                        continue  # overriding a merged value is what merging is for
                    if k not in seen:
                        seen[k] = (kn, vn)
                        entries.append((k, kn, vn))
                    elif seen[k][1] is not vn and not _same_node(seen[k][1], vn):
                        first = _line(seen[k][0].start_mark)
                        self.fail(self.smap.error(loc + (k,), f"two maps merged here both "
                                                  f"set '{k}' (lines {first} and "
                                                  f"{_line(kn.start_mark)}): the first would "
                                                  "win silently", hint="set it here, or in "
                                                  "one of them", line=_line(key_node.start_mark)))
                        seen[k] = (kn, vn)  # said once
        self.merged[id(node)] = entries
        return entries

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, key_node, value_node in self._entries(node, loc):
            here = loc + (key,)
            self.smap.lines[here] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, here)
        return out
