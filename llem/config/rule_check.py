"""An include or exclude rule that asks for a value no point has (`exclude: [{batch_size:
4}]` beside `batch_size: [1, 2]`) matches nothing: a typo or a value since removed, and the
points it was written to drop or keep ran as if it were not there (an include rule that
matches nothing only showed once every point was gone). Refused at its line, with the
values the grid does give that parameter."""

from __future__ import annotations

from typing import Any

from llem.config.axes import same_key
from llem.config.loaded import Loaded


def check_rule_values(loaded: Loaded) -> None:
    """A ConfigError at the first rule that asks a parameter for values none of the grid's
    points has (every value it lists absent; the model is left out: a rule may name it as
    written or resolved)."""
    c = loaded.campaign
    given: dict[str, dict[Any, Any]] = {"backend": {same_key(b): b for b in c.backends}}
    for _, path, value, _ in loaded.used():
        given.setdefault(path, {})[same_key(value)] = value
    for section, rules in (("include", c.include), ("exclude", c.exclude)):
        for i, rule in enumerate(rules):
            for path, want in rule.items():
                wants = want if isinstance(want, list) else [want]
                have = given.get(path, {})
                if path == "model" or any(same_key(w) in have for w in wants):
                    continue
                if not have:
                    raise loaded.source.error(
                        (section, i, path), f"{section} rule {i + 1} asks for {path}, which "
                        "this grid never sets (its points take the default): a rule matches "
                        "values written in the grid only, so it matches nothing",
                        hint=f"write {path} in grid:, or leave it out of the rule")
                values = ", ".join(_short(v) for v in list(have.values())[:8])
                raise loaded.source.error(
                    (section, i, path), f"{section} rule {i + 1} asks for {path} "
                    f"{_short(want)}, which no point of this grid has (its values here: "
                    f"{values}): the rule matches nothing",
                    hint="use one of those values, or remove the rule")


def _short(v: Any) -> str:
    text = "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."
