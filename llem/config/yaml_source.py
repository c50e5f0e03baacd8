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
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError("file not found", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=name) from None
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for a "
                          "grid file", file=name, hint="split it, or list values, not data")
    raw = path.read_bytes()
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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML: {problem}", file=name,
                          line=mark.line + 1 if mark else None) from None
    if node is None:
        return None, smap
    builder = _Builder(smap)
    return builder.build(node, ()), smap


class _Builder:
    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.count = 0
        self.scalar_loader = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.smap.error(loc, f"more than {MAX_NODES} values after expanding "
                                  "anchors/aliases", hint="is an alias nested inside itself?")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            out = []
            for i, item in enumerate(node.value):
                self.smap.lines.setdefault(loc + (i,), item.start_mark.line + 1)
                out.append(self.build(item, loc + (i,)))
            return out
        assert isinstance(node, yaml.ScalarNode)
        try:
            return self.scalar_loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.smap.error(loc, f"bad value: {exc}") from None

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        self.scalar_loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
        out: dict[Any, Any] = {}
        merged: set[str] = set()  # keys that came from a merge; an explicit key overrides them
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.smap.error(loc, "a key must be a plain value, not a list or map")
            key = self.scalar_loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool):
                raise self.smap.error(loc, f"unsupported key {key!r}")
            key_s = str(key)
            here = loc + (key_s,)
            is_explicit = id(key_node) in explicit
            if key_s in out and (key_s in merged or not is_explicit):
                if not is_explicit:
                    continue  # a later merge never overrides
                merged.discard(key_s)
            elif key_s in out:
                first = self.smap.lines.get(here)
                raise self.smap.error(here, f"duplicate key (first written on line {first})",
                                      hint="keep one of them",
                                      line=key_node.start_mark.line + 1)
            if not is_explicit:
                merged.add(key_s)
            self.smap.lines[here] = key_node.start_mark.line + 1
            out[key_s] = self.build(value_node, here)
        return out
