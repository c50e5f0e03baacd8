"""The grid file as written (Campaign) and pydantic errors as one plain sentence each.

Campaign holds the file's keys; its lists and maps become fixed values and axes in
llem.config.axes (the grammar is described there and in the README's "The grid file").
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from llem.backends import DEFAULT_BACKEND
from llem.config.models import (
    ENGINE_SECTIONS,
    INT32_MAX,
    MAX_POINTS,
    MAX_RULES,
    YAML_BOOLS,
    Scheduling,
    Strict,
    check_name,
)
from llem.config.yaml_source import INT64, shown

MAX_EXPERIMENTS = 1000  # explicit experiments of one file (each is a small grid of its own)


def describe_error(err: Any) -> str:
    """One pydantic error (an item of ValidationError.errors()) as a short plain sentence."""
    kind, msg, got = err["type"], str(err["msg"]), err.get("input")
    ctx = err.get("ctx") or {}
    shown_ = f" (got {shown(got)})" if not isinstance(got, dict | list | bool) else \
        f" (got {str(got).lower()}: {YAML_BOOLS})" if isinstance(got, bool) else \
        f" (got a {'map' if isinstance(got, dict) else 'list'})"
    if kind in ("int_type", "float_type") and isinstance(got, str) and _numeric(got):
        shown_ = f" (got the text {shown(got)}: write it without quotes)" if "e" not in \
            got.lower() else f" (got {shown(got)}, which YAML reads as text: write the digits, " \
            "or a dot before the exponent, e.g. 1.0e+6)"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return "unknown setting"
    if kind == "dict_type":
        return "must be a map of settings (key: value)" + shown_
    if kind in ("list_type", "tuple_type"):
        return "must be a list, e.g. [a, b]" + shown_
    if kind == "too_short":
        return "must list at least one value"
    if kind == "too_long":
        return f"must list at most {ctx.get('max_length')} values"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number" + shown_
    if kind in ("float_type", "float_parsing"):
        return "must be a number" + shown_
    if kind == "finite_number":
        return "must be a finite number" + shown_
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false" + shown_
    if kind == "string_type":
        if isinstance(got, int | float) and not isinstance(got, bool):
            shown_ = f" (got {got!r}, which YAML reads as a number: quote it, e.g. '{got}')"
        if got is None:
            shown_ = " (got an empty value: write one, or remove the key for its default)"
        return "must be text" + shown_
    for bound, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx and kind.startswith(("greater", "less")):
            why = ", the store's 32-bit limit" if ctx[bound] == INT32_MAX else \
                ", the store's 64-bit limit" if ctx[bound] in INT64 else ""
            return f"must be {op} {ctx[bound]}{why}" + shown_
    return msg.replace("Input should be", "must be") + shown_


def _numeric(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


CALIBRATION_SUFFIX = ".calibration"  # the reference rows' campaign: <campaign>.calibration


class Campaign(Strict):
    """A grid file. Lists are axes (crossed); see llem.config.grid for the grammar."""

    # engine sections (ENGINE_SECTIONS) are the extra keys, each a map: engine_section()
    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, dict[str, Any]] = Field(init=False)

    name: str
    store: str = "results"
    cycles: int = Field(1, ge=1, le=1000)
    # the order of configurations within a cycle; interleave: across what cycles alternate
    # (groups: every load group's cycle 0 before any cycle 1, a model load per group per
    # cycle; within_group: one load per group). llem.config.order says how.
    order: Literal["interleaved", "sequential", "shuffled", "williams"] = "interleaved"
    interleave: Literal["groups", "within_group"] = "groups"
    # for order: shuffled; None: drawn at run time and recorded (order_seed, int64)
    seed: int | None = Field(None, ge=INT64[0], le=INT64[1])
    models: list[str] = Field(min_length=1)
    backends: list[str] = Field(default_factory=lambda: [DEFAULT_BACKEND], min_length=1)
    grid: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    measurement: dict[str, Any] = Field(default_factory=dict)
    resources: dict[str, Any] = Field(default_factory=dict)
    server: dict[str, Any] = Field(default_factory=dict)  # server mode: the load (Server)
    # backend -> its Python environment (llem.config.environments.EnvChoice); not part of any job_id
    environments: dict[str, Any] = Field(default_factory=dict)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    include: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_RULES)
    exclude: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_RULES)
    max_points: int = Field(100_000, ge=1, le=MAX_POINTS)
    # backend -> parameter paths whose values (or axes) replace the grid's for that backend's
    # points only: per_backend: {vllm: {batch_size: 64}} (llem.config.parts)
    per_backend: dict[str, Any] = Field(default_factory=dict)
    # one-off points or small grids run besides the sweep (llem.config.parts)
    experiments: list[dict[str, Any]] = Field(default_factory=list,
                                              max_length=MAX_EXPERIMENTS)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v.endswith(CALIBRATION_SUFFIX):
            raise ValueError(f"campaign name {v!r} ends in '{CALIBRATION_SUFFIX}': the "
                             f"calibration rows of campaign {v[:-len(CALIBRATION_SUFFIX)]!r} "
                             "are stored under that name (choose another)")
        return check_name(v, "campaign name")

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if not v.strip() or v != v.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in v):
            raise ValueError(f"must be a folder path or URI, e.g. results (got "
                             f"{shown(v)})")
        return v

    @field_validator("models", "backends", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("interleave")
    @classmethod
    def _interleave(cls, v: str, info: ValidationInfo) -> str:
        """Runs only when interleave is written (a default is not validated)."""
        if v == "groups" and info.data.get("order") == "sequential":
            raise ValueError("groups alternates cycles across load groups, but order "
                             "sequential runs each point's cycles back to back: remove "
                             "interleave, or choose another order")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int | None, info: ValidationInfo) -> int | None:
        """Runs only when seed is written: it orders nothing unless order is shuffled."""
        order = info.data.get("order")
        if v is not None and order is not None and order != "shuffled":
            raise ValueError(f"seed: is the seed of order: shuffled, and order {order} draws "
                             "nothing with it: remove it, or set order: shuffled (a point's "
                             "sampling seed is grid: {seed: ...})")
        return v

    @model_validator(mode="after")
    def _sections(self) -> Campaign:
        unknown = [k for k in self.model_extra or {} if k not in ENGINE_SECTIONS]
        if unknown:
            raise ValueError(f"unknown key '{unknown[0]}'")
        return self

    def engine_section(self, backend: str) -> dict[str, Any]:
        """The grid's `<backend>:` section (engine args and their axes), {} when absent."""
        return (self.model_extra or {}).get(backend) or {}
