"""Read a grid file safely and remember the line of every key.

yaml.safe_load silently keeps the last of duplicate keys, expands alias bombs without limit
and forgets where each value came from. We compose the node graph ourselves so that
duplicates are errors, expansion is bounded, and errors can name the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llem.errors import ConfigError

MAX_FILE_BYTES = 1 << 20  # a grid file is hand-written; anything bigger is a mistake
MAX_NODES = 200_000  # bounded expansion of anchors/aliases (billion-laughs guard)
MAX_DEPTH = 64  # nesting deeper than this is a mistake (and would exhaust the stack)
MERGE_TAG = "tag:yaml.org,2002:merge"
PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

Loc = tuple[str | int, ...]


class SourceMap:
    """Where each key of a parsed file was written: loc tuple -> 1-based line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Loc, int] = {}

    def line(self, loc: Loc) -> int | None:
        """The line of loc, or of its nearest written parent."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def error(self, loc: Loc, message: str, hint: str | None = None,
              line: int | None = None) -> ConfigError:
        key = ".".join(str(p) for p in loc) or None
        return ConfigError(message, file=self.file, key=key, line=line or self.line(loc),
                           hint=hint)


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Parse path into plain Python data plus a SourceMap; every failure is a ConfigError."""
    name = str(path)
    too_big = ConfigError(f"file is over the {MAX_FILE_BYTES}-byte limit for a grid file",
                          file=name, hint="split it, or list values, not data")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise too_big  # refused before reading a byte
        with path.open("rb") as f:  # bounded read: /dev/zero or a pipe cannot exhaust memory
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", file=name) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a grid file", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=name) from None
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
    return builder.build(node, ()), smap


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
        return _problem(exc)
    tag = str(node.tag).removeprefix("tag:yaml.org,2002:")
    return f"{node.value!r} is not a valid !!{tag}"


class _Builder:
    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.count = 0
        self.scalar_loader = yaml.SafeLoader("")
        self.active: set[int] = set()  # nodes being built: an alias to one is a cycle
        self.merged: dict[int, list[tuple[str, yaml.Node, yaml.Node]]] = {}

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
            try:
                return self.scalar_loader.construct_object(node, deep=True)
            except Exception as exc:  # a tag the value does not fit (!!int abc)
                raise self.smap.error(loc, f"bad value: {_scalar_problem(node, exc)}",
                                      line=_line(node.start_mark)) from None
        if node.tag not in PLAIN_TAGS:
            raise self.smap.error(loc, f"unsupported YAML tag '{node.tag}'",
                                  hint="remove the tag", line=_line(node.start_mark))
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

    def _key(self, key_node: yaml.Node, loc: Loc) -> str:
        line = _line(key_node.start_mark)
        if not isinstance(key_node, yaml.ScalarNode):
            raise self.smap.error(loc, "a key must be a plain value, not a list or map",
                                  line=line)
        try:
            key = self.scalar_loader.construct_object(key_node)
        except Exception as exc:
            raise self.smap.error(loc, f"bad key: {_scalar_problem(key_node, exc)}",
                                  line=line) from None
        if not isinstance(key, str | int | float | bool):
            raise self.smap.error(loc, f"unsupported key {key!r}", hint="write a name",
                                  line=line)
        return str(key)

    def _entries(self, node: yaml.MappingNode, loc: Loc) -> list[tuple[str, yaml.Node,
                                                                       yaml.Node]]:
        """The mapping's (key, key node, value node) with merge keys (<<: *a) resolved.

        Explicit keys override merged ones; among merged mappings the first wins. Each
        mapping is resolved once and deduplicated, so nested merges cannot blow up.
        """
        if id(node) in self.merged:
            return self.merged[id(node)]
        self.merged[id(node)] = []  # a merge that reaches back here adds nothing
        explicit: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self._key(key_node, loc)
            if key in explicit:
                first = _line(explicit[key].start_mark)
                raise self.smap.error(loc + (key,), f"duplicate key (first written on line "
                                      f"{first})", hint="keep one of them",
                                      line=_line(key_node.start_mark))
            explicit[key] = key_node
        entries: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag != MERGE_TAG:
                entries.append((self._key(key_node, loc), key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                else [value_node]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    raise self.smap.error(loc, "'<<' (merge) takes a map or a list of maps",
                                          line=_line(src.start_mark))
                for k, kn, vn in self._entries(src, loc):
                    if k not in explicit and k not in seen:
                        seen.add(k)
                        entries.append((k, kn, vn))
        self.merged[id(node)] = entries
        return entries

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, key_node, value_node in self._entries(node, loc):
            here = loc + (key,)
            self.smap.lines[here] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, here)
        return out
