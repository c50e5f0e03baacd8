"""Checks of a loaded grid that look past its own text: combinations a backend library would
reject (found when the grid is loaded), and every prompt file and HF dataset it names
(check_datasets, before Ray starts).

Backend options: each backend's own checks (the registry's `options` module). Paths of local
adapters and assistant models resolve against the grid file's folder, like models do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llem.backends import REGISTRY, options_of
from llem.config.axes import SECTION_MODELS, resolve
from llem.config.grid import combinations, located, never_used
from llem.config.hub_quiet import quiet_hub
from llem.config.loaded import Loaded
from llem.config.models import Point, Server
from llem.config.modes import PROFILE_USES, SERVER_BODY, UNUSED_IN_SERVER, default_of
from llem.config.yaml_source import Loc
from llem.credentials import credential_files
from llem.errors import Problems, UserError
from llem.prompts.dataset import FileProblem, file_pool, load_hf

PATH_PREFIXES = ("./", "../", "/", "~")
# the paths that rules across fields read (Point's and each section's model validators)
CROSS_FIELD = ("input_policy", "max_input_tokens", "min_new_tokens", "max_new_tokens",
               "output_policy", "mode", *(f"{s}." for s in SECTION_MODELS))
CHECKED = ("resources.gpus_per_job", "batch_size", "streaming")  # what backend checks read


def check_cross_fields(loaded: Loaded) -> None:
    """Rules across fields (pad needs max_input_tokens, mode server needs a server section,
    a poisson profile needs a rate, min_new_tokens <= max_new_tokens, ...) on every
    combination of those fields the grid's points have (include/exclude applied), whatever
    the order they were written in; a broken one is a ConfigError at the line of a value it
    names."""
    for values, where in combinations(loaded, _cross_field):
        try:
            resolve({"backend": "noop", "model": "x", **values})
        except (ValidationError, ValueError) as exc:
            raise located(loaded.source, exc, where) from None


def _cross_field(path: str) -> bool:
    return path.startswith(CROSS_FIELD)


def check_backend_keys(loaded: Loaded, problems: Problems) -> None:
    """Each key of a backend's engine section, and each generate: key its points get, that
    the backend's library would reject when the model loads (its options module's
    check_keys): a problem each, located and with the right place suggested. What could not
    be checked is noted in loaded.notes (the dry run prints them)."""
    for backend in loaded.campaign.backends:
        opts = options_of(backend) if backend in REGISTRY else None
        check = getattr(opts, "check_keys", None) if opts is not None else None
        if check is None:
            continue
        keys: dict[str, dict[str, tuple[Any, Loc]]] = {"engine": {}, "generate": {}}
        modes: dict[tuple[str, str], set[str]] = {}  # (section, key) -> its points' modes
        value_check = getattr(opts, "check_generate_value", None)
        bad_values: set[str] = set()
        for name, path, value, loc, its_modes in _used_with_modes(loaded, backend):
            head, _, rest = path.partition(".")
            section = "engine" if head == backend else "generate" if head == "generate" \
                else None
            if name == backend and section is not None:
                key = rest.split(".", 1)[0]
                keys[section].setdefault(key, (_top(value, rest), loc))
                modes.setdefault((section, key), set()).update(its_modes)
                if section == "generate" and value_check and "offline" in its_modes and \
                        key not in bad_values and (why := value_check(key, _top(value, rest))):
                    bad_values.add(key)  # every value of an axis, one line a key
                    said = "" if f"generate.{key}" in ".".join(map(str, loc)) else \
                        f"'generate.{key}': "
                    problems.add(loaded.source.error(loc, said + why))
        env = loaded.campaign.environments.get(backend) or {}
        for section, found in keys.items():
            by_modes: dict[frozenset[str], dict[str, Any]] = {}
            for k, (v, _) in found.items():
                by_modes.setdefault(frozenset(modes[(section, k)]), {})[k] = v
            for key_modes, these in by_modes.items():
                _check_section(loaded, backend, check, section, these, found, env,
                               set(key_modes), problems)


def check_mode_values(loaded: Loaded, problems: Problems) -> None:
    """A value that no point it reaches uses, by that point's mode (llem.config.modes): a
    server: value (server mode's load) that reaches offline points only, or an offline
    setting (batch_size, streaming, measurement's arrivals, warmup and window) off its default
    that reaches server points only. Each value would run the same job again, labelled with
    a setting it never had (`server: {rate: [2, 4]}` without `mode: server` ran one offline
    job twice). A problem at its line, saying where that mode takes it from; where a value
    reaches both modes, the points that do not use it reset it (llem.config.models.Point)."""
    modes: dict[Any, set[str]] = {}
    offline: dict[Any, tuple[str, set[str]]] = {}
    for backend in loaded.campaign.backends:
        for _, path, value, loc, its_modes in _used_with_modes(loaded, backend):
            if path == "server" or path.startswith("server."):
                modes.setdefault(tuple(loc), set()).update(its_modes)
            elif path in UNUSED_IN_SERVER and value != default_of(path, Point) and \
                    (path, value) != ("streaming", True):  # what server mode does anyway
                offline.setdefault(tuple(loc), (path, set()))[1].update(its_modes)
    for loc, its_modes in modes.items():
        if "server" not in its_modes:
            problems.add(loaded.source.error(
                loc, "server: is the load of server mode, and no point it reaches runs in "
                "server mode: offline jobs would carry a load they never had",
                hint="set grid: {mode: server} (or mode: [offline, server]), or remove it"))
            break
    said: set[str] = set()
    for loc, (path, its_modes) in offline.items():
        if its_modes == {"server"} and path not in said:
            said.add(path)  # one line a setting, at its first value
            problems.add(loaded.source.error(
                loc, f"'{path}' is an offline setting, and every point it reaches runs in "
                "server mode, which does not use it: each value would run the same server "
                "job, labelled with a setting it never had", hint=UNUSED_IN_SERVER[path]))


def check_profile_values(loaded: Loaded) -> None:
    """A server: field off its default that no server point it reaches uses, by that point's
    profile (llem.config.modes.PROFILE_USES: a rate beside profile concurrency, a burstiness
    beside poisson): each value would run the same level again, labelled with a setting it
    never had. A ConfigError at its line; where some of its points use it, the others reset
    it (llem.config.models.Server)."""
    def wanted(path: str) -> bool:
        return path == "mode" or path.startswith("server.")

    def judge(values: dict[str, Any], where: dict[str, Any]) -> Iterator[tuple[Loc, str, bool]]:
        if values.get("mode", "offline") != "server":
            return
        profile = values.get("server.profile", "poisson")
        for field, uses in PROFILE_USES.items():
            path = f"server.{field}"
            if path in values and values[path] != Server.model_fields[field].default:
                yield tuple(where.get(path, ("server", field))), field, profile in uses

    found = never_used(loaded, wanted, judge)
    if found is not None:
        loc, field = found
        uses = PROFILE_USES[field]
        raise loaded.source.error(
            loc, f"server.{field} is used only by profile{'s' * (len(uses) > 1)} "
            f"{', '.join(uses)}, and no point it reaches has one: each value would run "
            "the same level, labelled with a setting it never had",
            hint=f"remove it, or write it beside its profile (a group alternative: "
            f"{{profile: {uses[0]}, {field}: ...}})")


def check_server_body(loaded: Loaded) -> None:
    """A generate.<key> of a server point that is a request body field llem's client writes
    itself (SERVER_BODY: generate.max_tokens overwrote max_new_tokens, generate.n counted
    four completions as one request): a ConfigError at its line. Every such job ran after
    Ray started, labelled with what was not sent, or failed."""

    def wanted(path: str) -> bool:
        return path == "mode" or path.startswith("generate.")

    for values, where in combinations(loaded, wanted):
        if values.get("mode", "offline") != "server":
            continue
        for path in values:
            key = path.split(".")[1] if path.startswith("generate.") else ""
            if key in SERVER_BODY:
                raise loaded.source.error(
                    tuple(where.get(path, ("generate",))), f"'{key}' is a field of the "
                    "request body llem's client writes itself in server mode: "
                    f"{SERVER_BODY[key]}", hint=f"remove {path}")


def check_local_keys(loaded: Loaded) -> None:
    """A run on this machine's own Ray: each endpoint.api_key_env must be set here, where its
    workers get their environment (on a cluster its nodes may hold it). Unset, every job
    failed after Ray started."""
    for values, where in combinations(loaded, "endpoint.api_key_env".__eq__):
        name = values.get("endpoint.api_key_env")
        if isinstance(name, str) and name not in os.environ:
            raise loaded.source.error(
                tuple(where.get("endpoint.api_key_env", ("endpoint",))),
                f"the environment variable {name} is not set, and the workers of a run on "
                "this machine take their environment from here",
                hint=f"export {name}=<the endpoint's key>, or run on a cluster whose nodes "
                "hold it (--address)")


def _check_section(loaded: Loaded, backend: str, check: Any, section: str,
                   these: dict[str, Any], found: dict[str, tuple[Any, Loc]],
                   env: dict[str, Any], modes: set[str], problems: Problems) -> None:
    """One check_keys call: the keys of section whose points have these modes."""
    wrong, note = check(section, these, environment=env, modes=modes)
    for key, why, hint in wrong:
        loc = found[key][1]
        path = f"{_name(backend, section)}.{key}"
        said = "" if ".".join(map(str, loc)).endswith(path) else f"'{path}': "
        problems.add(loaded.source.error(loc, said + why, hint=hint))
    if note and note not in loaded.notes:
        loaded.notes.append(note)


def _top(value: Any, rest: str) -> Any:
    """The value of a key as written under it (a dotted path's leaf, nested back)."""
    for part in reversed(rest.split(".")[1:]):
        value = {part: value}
    return value


def _name(backend: str, section: str) -> str:
    return backend if section == "engine" else "generate"


def _used_with_modes(loaded: Loaded, backend: str
                     ) -> list[tuple[str, str, Any, Any, set[str]]]:
    """loaded.used() of backend's points, each with the modes (offline, server) of the
    points that get the value: an alternative that sets mode itself gives that mode alone
    (`{mode: server, transformers.cb_num_blocks: 64}` is a server option, checked as one),
    anything else the modes its part's points can have."""
    out = []
    for part in loaded.parts():
        if backend not in part.part_backends():
            continue
        mine = _part_modes(part, backend)
        where = part.where_for(backend)
        out += [(backend, p, v, where.get(p, (p.split(".", 1)[0],)), mine)
                for p, v in part.fixed_for(backend).items()]
        out += [(backend, p, v, loc, {alt["mode"]} if isinstance(alt.get("mode"), str) else mine)
                for ax in part.axes_for(backend)
                for alt, loc in zip(ax.alternatives, ax.locs) for p, v in alt.items()]
    return out


def _part_modes(part: Loaded, backend: str) -> set[str]:
    """The modes (offline, server) one part's points of backend can have."""
    fixed = part.fixed_for(backend)
    if "mode" in fixed:
        return {fixed["mode"]}
    axes = [ax for ax in part.axes_for(backend) if "mode" in ax.paths()]
    modes = {alt["mode"] for ax in axes for alt in ax.alternatives if "mode" in alt}
    if not any(all("mode" in alt for alt in ax.alternatives) for ax in axes):
        modes.add("offline")
    return modes or {"offline"}


def check_backend_options(loaded: Loaded, base_dir: Path) -> None:
    """Raise ConfigError (file, line, key) for the first job a backend would reject, by its
    own rules (its options module's check_options); local paths it names are resolved."""
    for backend in loaded.campaign.backends:
        opts = options_of(backend)
        if opts is None:
            continue
        used = {p for b, p, _, _ in loaded.used() if b == backend}
        if not any(p.startswith(f"{backend}.") for p in used):
            _check_no_options(loaded, backend, getattr(opts, "check_options", None))
            continue  # no grid walk for a large grid
        for part in loaded.parts():
            _resolve_paths(part, base_dir, [f"{backend}.{k}" for k in
                                            getattr(opts, "PATH_KEYS", ())])
        check = getattr(opts, "check_options", None)
        if check is not None:
            _check_points(loaded, backend, check)


def _check_no_options(loaded: Loaded, backend: str, check: Any) -> None:
    """A backend the grid gives no options: what its check says of none (the endpoint
    backend without its section passed, and every job failed after Ray started)."""
    problem = check({}, gpus=0, batch_size=1, streaming=False) if check else None
    if problem:
        key, why = problem
        c = loaded.campaign
        loc: Loc = ("backends", c.backends.index(backend)) if backend in c.backends else ()
        if loc not in loaded.source.lines and any(  # named by an experiment only
                backend in (e.get("backend"), *(e.get("backends") or [])) for e in c.experiments):
            loc = ("experiments",)
        raise loaded.source.error(loc, f"backend '{backend}' has no {backend}: section, "
                                  f"and {backend}.{key}: {why}",
                                  hint=f"add a section, e.g. {backend}: {{{key}: ...}}")


def _check_points(loaded: Loaded, backend: str, check: Any) -> None:
    """Each combination of what the backend's check reads (its engine args, GPUs, batch
    size, streaming) that the grid's points have, once: the other axes are not crossed."""
    prefix = f"{backend}."

    def wanted(p: str) -> bool:
        return p.startswith(prefix) or p in CHECKED

    for values, where in combinations(loaded, wanted, [backend]):
        try:
            point = resolve({"backend": backend, "model": "x", **values})
        except (ValidationError, ValueError) as exc:
            raise located(loaded.source, exc, where) from None
        problem = check(point.engine, gpus=point.resources.gpus_per_job,
                        batch_size=point.batch_size, streaming=point.streaming)
        if problem:
            key, why = problem
            raise loaded.source.error(_where(loaded, f"{backend}.{key}"), why)


def _where(loaded: Loaded, path: str) -> Loc:
    """Where path (or a setting under it) was written: fixed value, else an axis."""
    for part in loaded.parts():
        for p, loc in part.where.items():
            if p == path or p.startswith(path + "."):
                return tuple(loc)
        for ax in part.axes:
            for alt, loc in zip(ax.alternatives, ax.locs):
                if any(p == path or p.startswith(path + ".") for p in alt):
                    return tuple(loc)
    return (path.split(".", 1)[0],)


def _resolve_paths(loaded: Loaded, base_dir: Path, keys: list[str]) -> None:
    """./relative paths (adapters, assistant models) become absolute; a missing one is an
    error."""
    places: list[tuple[dict[str, Any], str, Loc]] = [
        (loaded.fixed, p, loaded.where.get(p, (p.split(".", 1)[0],))) for p in keys
        if p in loaded.fixed]
    for scoped in loaded.per_backend.values():
        places += [(scoped.fixed, p, scoped.where.get(p, ("per_backend",))) for p in keys
                   if p in scoped.fixed]
    for ax in [*loaded.axes, *(a for s in loaded.per_backend.values() for a in s.axes)]:
        for alt, loc in zip(ax.alternatives, ax.locs):
            places += [(alt, p, loc) for p in keys if p in alt]
    for values, path, loc in places:
        value = values[path]
        if not isinstance(value, str) or not value.startswith(PATH_PREFIXES):
            continue
        resolved = (base_dir / Path(value).expanduser()).resolve()
        if not resolved.exists():
            raise loaded.source.error(loc, f"{path.split('.', 1)[1]} path {resolved} does not "
                                      "exist", hint="paths are relative to the grid file")
        values[path] = str(resolved)


def check_datasets(loaded: Loaded) -> None:
    """Resolve every distinct dataset of the campaign (not every point) and read its prompt
    file; a problem raises UserError naming the grid file, line and key (dataset.path).

    Built-in prompts ship with llem; HF datasets (and the named ones, such as the AI Energy
    Score prompts) are loaded here once (kept for the driver in this process), so an offline
    machine or a dataset without a text column fails before Ray starts, at the line of the
    grid that names it.
    """
    base_dir = loaded.path.resolve().parent if loaded.path else Path.cwd()
    checked: set[str] = set()
    for values, where in combinations(loaded, lambda p: p.startswith("dataset.")):
        ds = resolve({"backend": "noop", "model": "x", **values}).dataset
        loc = where.get("dataset.path") or where.get("dataset.source") or ("dataset",)
        if ds.source not in ("builtin", "file"):
            key = ds.model_dump_json(include={"source", "path", "split", "column"})
            if key not in checked:
                checked.add(key)
                try:  # download (or cache hit) and column detection, before Ray
                    if ds.path:  # a local folder or file is read as a dataset too
                        _not_data(str(ds.path), base_dir)
                    with quiet_hub("datasets"):
                        load_hf(ds)
                except FileProblem as exc:
                    raise loaded.source.error(loc, str(exc), hint=exc.hint) from None
                except UserError as exc:
                    raise loaded.source.error(loc, str(exc)) from None
            continue
        if ds.source != "file" or str(ds.path) in checked:
            continue
        checked.add(str(ds.path))
        try:
            _not_data(str(ds.path), base_dir)
            file_pool(ds, base_dir)
        except FileProblem as exc:
            raise loaded.source.error(loc, str(exc), hint=exc.hint) from None


PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))  # files whose size is no bound


def _not_data(path: str, base_dir: Path) -> None:
    """A prompt file is data: not a kernel or device file (/proc/self/environ holds this
    process's credentials, and its size reads 0), and not a credential file."""
    try:
        real = (base_dir / Path(path).expanduser()).resolve()
    except (RuntimeError, OSError):
        return  # file_pool says why
    if any(real == r or r in real.parents for r in PSEUDO_ROOTS):
        raise FileProblem(f"prompt file {real} is a kernel or device file, not a prompt file",
                          "point it at a .jsonl or .txt file")
    if real in credential_files():
        raise FileProblem(f"prompt file {real} holds credentials: its text would be sent to "
                          "the model", "point it at a .jsonl or .txt file of prompts")

