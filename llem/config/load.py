"""Load a grid file into a validated Campaign plus its axes. Every mistake is a ConfigError of
one line; independent ones (unknown keys, bad values in different places) are reported
together (ConfigErrors, one line each), rules across them once those are all good."""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llem.backends import REGISTRY
from llem.config.arrival_check import check_arrival_values
from llem.config.axes import check_path, distinct, flatten_rule, same_key, suggest, validate
from llem.config.campaign import Campaign, describe_error
from llem.config.checks import (
    check_backend_keys,
    check_backend_options,
    check_cross_fields,
    check_mode_values,
    check_profile_values,
    check_server_body,
)
from llem.config.credential_scan import refuse_credentials
from llem.config.environments import EnvChoice
from llem.config.greedy_check import check_greedy_values
from llem.config.grid import combinations, count_before_rules, count_points
from llem.config.loaded import Loaded
from llem.config.models import ENGINE_SECTIONS, MAX_POINTS
from llem.config.modes import served_name
from llem.config.names import old_name_hint
from llem.config.overrides import labels, merge_overrides
from llem.config.parts import build
from llem.config.rule_check import check_rule_values
from llem.config.same_file import check_same_files
from llem.config.server_only import check_server_only
from llem.config.yaml_source import Loc, SourceMap, parse_yaml, read_yaml, shown
from llem.errors import ConfigError, Problems
from llem.models.builtin import BUILTIN_MODELS, PREFIX, is_builtin

PATH_PREFIXES = ("./", "../", "/", "~")
# huggingface_hub's repo id rule (utils.validate_repo_id), for when it is not installed
_HUB_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
HUB_ID = re.compile(rf"(?:{_HUB_PART}/)?{_HUB_PART}")
TYPE_NAMES = {"list": "a list", "str": "a single value", "int": "a number",
              "float": "a number", "bool": "a single value"}
MISSING_HINTS = {"name": "add e.g. name: my-campaign",
                 "models": "add e.g. models: [org/model-name]; hub ids or ./local/paths"}
STAND_INS = {"name": "x", "models": ["x"]}  # for required keys with a mistake: check the rest


def load_campaign(path: str | Path, overrides: dict[str, Any] | None = None) -> Loaded:
    """Read, validate and prepare a grid file. overrides (CLI flags): top-level keys or
    dotted parameter paths, each replacing what the file set (llem.config.overrides)."""
    p = Path(path)
    data, smap = read_yaml(p)
    return from_data(data, smap, base_dir=p.resolve().parent, overrides=overrides, path=p)


def load_text(text: str, name: str = "<string>", base_dir: Path | None = None) -> Loaded:
    data, smap = parse_yaml(text, name)
    return from_data(data, smap, base_dir=base_dir or Path.cwd())


def from_data(data: Any, smap: SourceMap, base_dir: Path, overrides: dict[str, Any] | None = None,
              path: Path | None = None) -> Loaded:
    if data is None:
        raise smap.error((), "the file is empty", hint="see configs/demo.yaml for an example")
    if not isinstance(data, dict):
        kind = TYPE_NAMES.get(type(data).__name__, type(data).__name__)
        raise smap.error((), f"the file must be a map of settings (key: value lines), not "
                         f"{kind}", hint="see configs/demo.yaml for an example", line=1)
    data = merge_overrides(data, overrides or {})
    smap.set_by.update(labels(overrides or {}))
    refuse_credentials(data, smap)  # first, and alone: no later message may quote one
    problems = Problems()  # independent mistakes: all reported at once
    known = [*Campaign.model_fields, *ENGINE_SECTIONS]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            problems.add(smap.error((key,), "unknown key", hint=old_name_hint(key) or (
                f"did you mean '{close[0]}'?" if close else
                f"known keys: {', '.join(known)}")))
    campaign, bad = _campaign({k: v for k, v in data.items() if k in known}, smap, problems)
    if campaign is None:
        problems.check()
        raise smap.error((), "the file is not a valid grid")  # (problems held the reason)
    models = []
    named = {b for e in campaign.experiments for k in ("backend", "backends")
             for b in ([e[k]] if isinstance(e.get(k), str) else e.get(k) or [])
             if isinstance(b, str)}
    hub = "backends" not in bad and any(loads_from_hub(b) for b in campaign.backends)
    served = "backends" not in bad and all(map(served_name, [*campaign.backends, *named]))
    for i, m in enumerate(campaign.models):
        with problems.collecting():
            models.append(_model(m, ("models", i), base_dir, smap, hub, served))
    campaign = campaign.model_copy(update={
        "models": [models[i] for i in distinct(models)],  # listed twice: one choice
        "backends": [campaign.backends[i] for i in distinct(campaign.backends)],
        "include": _rules(campaign.include, "include", smap, problems, campaign.grid),
        "exclude": _rules(campaign.exclude, "exclude", smap, problems, campaign.grid)})
    for i, rule in enumerate(campaign.include):
        for j, ex in enumerate(campaign.exclude):
            if _covers(ex, rule):
                problems.add(smap.error(("exclude", j), f"this rule drops every point that "
                                        f"include rule {i + 1} ({rule}) keeps",
                                        hint="remove it from one of the lists"))
    any_hub = hub or any(loads_from_hub(b) for b in named)

    def model(name: str, loc: Loc) -> str:
        return _model(name, loc, base_dir, smap, any_hub, served)

    loaded = build(campaign, smap, problems, path, check_backends="backends" not in bad,
                   model=model)
    if loaded is not None:
        _check_environments(loaded.campaign, smap, problems)
        if "backends" not in bad and not _mode_wrong(problems):
            check_backend_keys(loaded, problems)
            check_mode_values(loaded, problems)
    problems.check()
    assert loaded is not None  # (problems held the reason)
    # rules across fields and whole combinations: only on a grid whose values are all good
    _check_datasets(loaded)
    check_same_files(loaded, base_dir)
    _check_size(loaded)
    check_cross_fields(loaded)
    check_profile_values(loaded)
    check_greedy_values(loaded)
    check_arrival_values(loaded)
    check_rule_values(loaded)
    check_server_body(loaded)
    _check_not_empty(loaded)
    check_backend_options(loaded, base_dir)
    check_server_only(loaded)
    return loaded


def _mode_wrong(problems: Problems) -> bool:
    """A mode that is no mode (`mode: served`) already has its line; the checks that depend
    on the mode (server flags, the server: section) would each add a line of their own
    that fixing the mode removes."""
    return any(e.key and "mode" in e.key.split(".") for e in problems.errors)


def _campaign(data: dict[str, Any], smap: SourceMap,
              problems: Problems) -> tuple[Campaign | None, set[str]]:
    """The Campaign, every mistake in its own keys collected; the keys with a mistake are
    then left out (required ones get a stand-in) so the rest of the file is still checked."""
    try:
        return Campaign.model_validate(data), set()
    except ValidationError as exc:
        bad: set[str] = set()
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.add(smap.error(loc, describe_error(err), hint=MISSING_HINTS.get(
                str(loc[0])) if err["type"] == "missing" and loc else None))
            if loc:
                bad.add(str(loc[0]))
    rest = {k: v for k, v in data.items() if k not in bad}
    rest.update({k: v for k, v in STAND_INS.items() if k in bad or k not in rest})
    try:
        return Campaign.model_validate(rest), bad
    except ValidationError:
        return None, bad


def _check_environments(campaign: Campaign, smap: SourceMap, problems: Problems) -> None:
    """environments: keys are backends of this grid, values valid EnvChoice maps."""
    for backend, choice in campaign.environments.items():
        if backend not in campaign.backends:
            problems.add(smap.error(("environments", backend), f"an environment for "
                                    f"'{backend}', which is not in backends:",
                                    hint=f"known here: {', '.join(campaign.backends)}"))
            continue
        try:
            EnvChoice.model_validate(choice if choice is not None else {})
        except ValidationError as exc:
            for err in exc.errors():
                loc = ("environments", backend, *(p for p in err["loc"] if p != "[key]"))
                problems.add(smap.error(loc, describe_error(err), hint="kinds: current, "
                                        "venv, pip, uv, image; see jobs/README.md"
                                        if err["loc"] == ("kind",) else None))


def _rules(rules: list[dict[str, Any]], section: str, smap: SourceMap,
           problems: Problems, grid: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """include/exclude rules as flat {path: value}; every path must name a parameter (a
    named group of the grid is not one: its alternatives' values are)."""
    out = []
    for i, rule in enumerate(rules):
        if not rule:
            problems.add(smap.error((section, i), "empty rule: it would match every point",
                                    hint="give it keys, e.g. {batch_size: 8}"))
            continue
        flat = flatten_rule(rule)
        for key, want in flat.items():
            why = check_path(key) if key not in ("model", "backend") else None
            group = (grid or {}).get(key.split(".", 1)[0])
            if why and isinstance(group, list) and group and \
                    all(isinstance(a, dict) for a in group):
                example = next((f"{{{k}: {shown(v)}}}" for a in group for k, v in a.items()
                                if not isinstance(v, list | dict)), "{batch_size: 8}")
                problems.add(smap.error(
                    (section, i, key.split(".", 1)[0]), f"'{key.split('.', 1)[0]}' is a "
                    "named group of this grid, not a parameter: a rule matches parameters",
                    hint=f"match the values of its alternative, e.g. {example}"))
            elif why:
                problems.add(smap.error((section, i, key.split(".", 1)[0]), why,
                                        hint=suggest(key)))
            elif key not in ("model", "backend"):
                # a value of the wrong type would match nothing, or the wrong points
                # (true == 1): checked as the parameter's own values are
                for v in want if isinstance(want, list) else [want]:
                    with problems.collecting():
                        validate({key: v}, (section, i, key), smap)
        out.append(flat)
    return out


def _covers(ex: dict[str, Any], inc: dict[str, Any]) -> bool:
    """Does exclude rule ex match every point that include rule inc matches?"""
    for key, want in ex.items():
        if key not in inc:
            return False
        have = inc[key] if isinstance(inc[key], list) else [inc[key]]
        allowed = {same_key(w) for w in (want if isinstance(want, list) else [want])}
        if not all(same_key(h) in allowed for h in have):
            return False
    return True


def _check_datasets(loaded: Loaded) -> None:
    """Every dataset the grid can produce names its source completely (no file is read)."""
    for values, where in combinations(loaded, _dataset):
        source = values.get("dataset.source", "builtin")
        if source not in ("file", "hf") and values.get("dataset.path"):  # builtin's too
            raise loaded.source.error(where.get("dataset.path", ("dataset",)), f"dataset."
                                      f"source '{source}' names its own dataset; dataset.path "
                                      "would be ignored", hint="remove dataset.path, or use "
                                      "source: file (a prompt file) or hf (a dataset id); to "
                                      "compare sources, a group: grid: {dataset: [{source: "
                                      "builtin}, {source: file, path: ...}]}")
        for key in ("split", "column"):  # only an hf dataset id has splits and columns
            if source != "hf" and f"dataset.{key}" in values:
                raise loaded.source.error(
                    where.get(f"dataset.{key}", ("dataset",)), f"dataset.{key} is read from "
                    f"an hf dataset only; with dataset.source '{source}' it would be ignored",
                    hint=f"remove dataset.{key}" + (" (a .jsonl file's prompt is under "
                                                    "\"prompt\" or \"text\")"
                                                    if source == "file" else ""))
        if source in ("file", "hf") and not values.get("dataset.path"):
            loc = where.get("dataset.source", ("dataset",))
            what = "a prompt file (.jsonl or .txt)" if source == "file" else "the dataset id"
            raise loaded.source.error(loc, f"dataset.source is '{source}' but dataset.path "
                                      "is not set", hint=f"add dataset.path: {what}")


def loads_from_hub(backend: str) -> bool:
    """Does the backend load its model with a library, by hub id (BackendInfo.package)? A
    backend that needs no model (noop), or talks to a server that names its own (endpoint),
    takes any name."""
    info = REGISTRY.get(backend)
    return info is not None and info.needs_model and info.package is not None


def _dataset(path: str) -> bool:
    return path.startswith("dataset.")


def _model(model: str, loc: Loc, base_dir: Path, smap: SourceMap, hub: bool,
           served: bool = False) -> str:
    """Local paths (./, ../, /, ~) resolve against the grid file's folder and must exist;
    other names are hub ids where a backend of the grid loads from the hub. served: every
    backend of the grid sends the name to a running server (served_name): kept as written."""
    if not model.strip() or any(ord(ch) < 32 for ch in model):
        raise smap.error(loc, f"bad model name {model!r}",
                         hint="a hub id (org/name), a ./local/path or llem:tiny")
    if served and not is_builtin(model):
        return model
    if is_builtin(model):
        if model.removeprefix(PREFIX) not in BUILTIN_MODELS:
            raise smap.error(loc, f"unknown built-in model '{model}'",
                             hint=f"known: {', '.join(PREFIX + m for m in BUILTIN_MODELS)}")
        return model
    if not model.startswith(PATH_PREFIXES):  # a hub id (org/name)
        why = hub_id_problem(model) if hub else None
        if why:
            raise smap.error(loc, f"model {shown(model)} is not a hub id: {why}",
                             hint="a hub id (org/name), a ./local/path or llem:tiny")
        return model
    try:
        resolved = (base_dir / Path(model).expanduser()).resolve()
    except (RuntimeError, OSError) as exc:  # ~nosuchuser, a symlink loop
        raise smap.error(loc, f"cannot resolve model path {model!r}: {exc}") \
            from None
    if not resolved.exists():
        raise smap.error(loc, f"model path {resolved} does not exist",
                         hint="build one with `llem tiny-model DIR` or fix the path")
    why = _not_a_model(resolved) if hub else None
    if why:  # the hub library took the path for a repo id: an internal error, or a job
        # that failed in the worker
        raise smap.error(loc, f"model path {resolved} {why}",
                         hint="give the folder of a saved model: save_pretrained's, or "
                         "`llem tiny-model DIR`")
    return str(resolved)


def _not_a_model(path: Path) -> str | None:
    """Why a backend cannot load a model from path: a folder with config.json (params.json:
    Mistral's format) or a .gguf file (vLLM's single-file models)."""
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "params.json").is_file():
            return None
        return "holds no config.json: it is not a saved model"
    if path.is_file() and path.suffix == ".gguf":
        return None
    return "is a file, not a model folder" if path.is_file() else \
        "is not a folder (a pipe, device or socket)"


def hub_id_problem(repo_id: str) -> str | None:
    """Why the Hugging Face hub would refuse repo_id (huggingface_hub's own rule where it is
    installed, else HUB_ID, the same rule); None when it is a valid id."""
    bad = next((ch for ch in repo_id if not ch.isascii() or not ch.isprintable()), None)
    if bad is not None:  # a look-alike (Cyrillic o for o) is invisible in a message
        return (f"character U+{ord(bad):04X} at position {repo_id.index(bad) + 1} is not "
                "ASCII (a look-alike letter?)")
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:
        ok = HUB_ID.fullmatch(repo_id) and not ("--" in repo_id or ".." in repo_id or
                                                repo_id.endswith(".git"))
        return None if ok else ("letters, digits, '-', '_', '.', at most 96 each side of one "
                                "'/', no '--', '..' or trailing .git")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        return str(exc).split(":")[0].rstrip(".")
    return None


def _check_not_empty(loaded: Loaded) -> None:
    """include/exclude rules that together leave no point of the sweep: say so, before Ray
    starts."""
    c = loaded.campaign
    if not (c.include or c.exclude):
        return
    sweep = dataclasses.replace(loaded, experiments=[])
    if next(combinations(sweep, lambda p: False), None) is None:  # the rules' axes only
        n = count_before_rules(sweep)
        raise ConfigError(f"the grid is empty: include/exclude rules drop all {n} "
                          f"point{'' if n == 1 else 's'}", file=loaded.source.file,
                          hint="loosen an exclude rule or widen an include rule")


def _check_size(loaded: Loaded) -> None:
    """max_points counts the points that run: include/exclude applied, experiments added."""
    n = count_points(loaded)
    limit = loaded.campaign.max_points
    if n > limit:
        sizes = ", ".join(f"{a.key}: {len(a.alternatives)}" for a in loaded.axes
                          if len(a.alternatives) > 1)
        c = loaded.campaign
        before = count_before_rules(loaded)
        ruled = f" after include/exclude (of {before})" if (c.include or c.exclude) and \
            before != n else ""
        more = f", {len(loaded.experiments)} experiments" if loaded.experiments else ""
        raise ConfigError(f"the grid has {n} points{ruled}, over max_points={limit} "
                          f"({sizes}{more})", file=loaded.source.file,
                          hint="narrow an axis, add exclude: rules, or raise max_points"
                          if limit < MAX_POINTS else f"narrow an axis or add exclude: rules "
                          f"({MAX_POINTS} points is the most a grid may have)")
