"""`llem run --dry-run`: print llem.scheduler.plan's plan (counts, load groups, memory,
placement)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem.cli.term import console, plural
from llem.config.campaign import CALIBRATION_SUFFIX
from llem.config.grid import count_points
from llem.config.hub_quiet import quiet_hub
from llem.config.job import canonical, job_id_of
from llem.config.loaded import Loaded
from llem.config.models import Dataset
from llem.errors import UserError
from llem.measure.calibration import reference_job
from llem.models.memory import human
from llem.prompts.dataset import load_prompts
from llem.report.params import Points
from llem.scheduler.placement import Need, gpu_sets_of
from llem.scheduler.plan import (
    Node,
    Plan,
    PointPlan,
    cluster_nodes,
    local_nodes,
    make_plan,
)

POINTS_SHOWN = 50  # larger campaigns show the groups only (--verbose: every point)
PLAN_POINTS = 200_000  # planned point by point: ~30 s and ~1.3 GB at this many


def dry_run(loaded: Loaded, address: str | None, verbose: bool, store: str | None = None,
            as_json: bool = False, rerun: bool = False) -> int:
    """Print the plan (a table, or one JSON object); exit status 1 when some job can never
    be placed, else 0. With store, also how many jobs it already holds with status ok (a
    real run skips them). Planned from a machine without a GPU and no cluster given (a login
    node), the GPU jobs' placement is not checked, and said so (not_checked)."""
    n = count_points(loaded)
    if n > PLAN_POINTS:
        where = loaded.path.name if loaded.path else "the grid"
        raise UserError(f"{where}: the dry run plans each point (memory, "
                        f"placement): {n:,} points is over its {PLAN_POINTS:,} (about 30 s and "
                        "1.3 GB); narrow the grid (or include/exclude) to see a plan, or run it: "
                        "`llem run` walks its points lazily")
    if address and not as_json:  # joining a cluster and probing its GPUs takes seconds
        console(stderr=True).print(escape(f"reading the cluster at {address} (its nodes and "
                                          "GPUs)..."))
    nodes, where = cluster_nodes(address) if address else local_nodes()
    base_dir = loaded.path.resolve().parent if loaded.path else Path.cwd()
    cache: dict[str, list[str] | None] = {}

    def prompts(ds: Dataset) -> list[str] | None:
        key = ds.model_dump_json()
        if key not in cache:

            cache[key] = None if ds.source == "hf" else load_prompts(ds, base_dir)
        return cache[key]

    with quiet_hub():  # a model config read from the hub: its retries are not shown
        plan = make_plan(loaded, nodes, prompts)
    blind = None if address or any(n.gpus for n in nodes) else not_checked(plan)
    resumed = _resumed(plan, store, rerun) if store is not None else None
    cal = calibration(loaded, nodes, blind is not None)
    if as_json:
        click.echo(json.dumps({**as_data(plan, where, resumed, loaded.notes, blind),
                               "calibration": cal}))
    else:
        out = console()
        render(plan, where, out, verbose, blind)
        for note in loaded.notes:  # checks skipped here, and why
            out.print(escape(f"not checked: {note}"))
        if cal is not None:
            out.print(escape(cal["text"]))
        if resumed is not None:
            out.print(escape(resumed["text"]))
    return 1 if any(p.unplaceable for p in plan.points) else 0


def _resumed(plan: Plan, uri: str, rerun: bool = False) -> dict[str, Any]:
    """How many of the plan's jobs the store already holds with status ok (read only), and
    what a run does with them: skips them, or with --rerun measures them again."""
    from llem.store.store import Store

    try:
        st = Store(uri)
        done = st.done(plan.name)
    except Exception as exc:  # an unreachable bucket: the plan stands, say why
        return {"uri": uri, "done": None, "text": f"store {uri}: not readable "
                f"({type(exc).__name__}); resume not counted"}
    n = sum(1 for p in plan.points for c in range(plan.cycles)
            if (job_id_of(p.point), c) in done)
    then = f"--rerun measures all {plan.jobs} again (the earlier rows stay)" if rerun \
        else f"a run skips them and runs {plan.jobs - n}"
    return {"uri": st.uri, "done": n, "rerun": rerun, "runs": plan.jobs if rerun else plan.jobs - n,
            "text": f"store {st.uri}: {n} of {plural(plan.jobs, 'job')} already done (status "
                    f"ok); {then}"}


def calibration(loaded: Loaded, nodes: list[Node], blind: bool) -> dict[str, Any] | None:
    """What measurement.calibrate adds to a session that runs a job: its reference job, once
    on every GPU set of the nodes seen, before the first worker (None when no point asks).
    gpu_sets is None where the GPUs are not known here (blind)."""
    asked, _, job = reference_job(loaded)
    if not asked:
        return None
    if job is None:
        return {"job_id": None, "gpu_sets": 0, "text": "calibration: no configuration uses a "
                "GPU, nothing to calibrate"}
    gpj = job.point.resources.gpus_per_job
    sets = None if blind else len(gpu_sets_of({n.name: n.view().total for n in nodes},
                                               Need.of(job.point.resources)))
    on = "every GPU set of the cluster it runs on" if sets is None else \
        f"{plural(sets, 'GPU set')} of {plural(gpj, 'GPU')} here"
    return {"job_id": job.job_id, "gpu_sets": sets, "text": (
        f"calibration (measurement.calibrate): before the first job of each session that "
        f"runs one, reference job {job.job_id} ({job.point.backend}, {job.point.model}) "
        f"runs once on {on}, at once; its rows go to campaign "
        f"{loaded.campaign.name}{CALIBRATION_SUFFIX}")}


def not_checked(plan: Plan) -> str | None:
    """This machine has no GPU and no cluster was given: where the GPU jobs will run is not
    known here, so their placement (GPUs, memory per GPU) is not checked and not refused
    (a run here refuses them before Ray starts: llem.scheduler.here). The line saying so,
    or None when no job needs a GPU."""
    gpu = [p for p in plan.points if p.point.resources.gpus_per_job]
    if not gpu:
        return None
    for p in gpu:
        p.unplaceable = None
    counts = sorted({p.point.resources.gpus_per_job for p in gpu})
    each = f"{counts[0]}" if len(counts) == 1 else \
        f"{counts[0]} or {counts[1]}" if len(counts) == 2 else f"{counts[0]} to {counts[-1]}"
    each += " GPU each" if counts == [1] else " GPUs each"
    who = "the jobs" if len(gpu) == len(plan.points) else \
        f"{len(gpu) * plan.cycles} of {plural(plan.jobs, 'job')}"
    return (f"GPU placement not checked: this machine has no GPU and no Ray cluster was given; "
            f"{who} need {each} (GPU memory not checked either). A run here refuses them; "
            "--address (or RAY_ADDRESS) checks them against a cluster")


def _checked(p: PointPlan, blind: str | None) -> bool:
    return blind is None or not p.point.resources.gpus_per_job


def as_data(plan: Plan, where: str, resumed: dict[str, Any] | None,
            plan_notes: list[str] | tuple[str, ...] = (),
            blind: str | None = None) -> dict[str, Any]:
    """The plan as plain data (`--dry-run --json`): sizes in bytes; blind: not_checked's
    line (placement_checked is false on the points it covers)."""
    points = []
    for p in plan.points:
        e = p.estimate
        points.append({
            "group": p.group + 1, "job_id": job_id_of(p.point), "backend": p.point.backend,
            "model": p.point.model, "batch_size": p.point.batch_size,
            "max_new_tokens": p.point.max_new_tokens, "gpus_per_job":
            p.point.resources.gpus_per_job, "dtype": e.dtype if e else p.point.dtype,
            "params": e.params if e else None, "kv_tokens": e.tokens if e else None,
            "weights_bytes_per_gpu": e.weights_bytes if e else None,
            "kv_cache_bytes_per_gpu": e.kv_bytes if e else None,
            "memory_bytes_per_gpu": e.total_bytes if e else None,
            "input_length_known": p.input_known, "input_length_exact": p.input_exact,
            "no_estimate": p.unknown,
            "never_placed": p.unplaceable, "placement_checked": _checked(p, blind)})
    groups = [{"group": i + 1, "backend": g.backend, "model": g.model, "dtype": g.dtype,
               "gpus_per_job": g.gpus, "points": len(g.points),
               "jobs": len(g.points) * plan.cycles} for i, g in enumerate(plan.groups)]
    nodes = [{"name": n.name, "gpus": n.gpus, "gpu_names": n.gpu_names,
              "gpu_memory_bytes": n.gpu_memory_bytes, "cpus": n.cpus,
              "accelerator": n.accelerator} for n in plan.nodes]
    return {"campaign": plan.name, "points": len(plan.points), "cycles": plan.cycles,
            "jobs": plan.jobs, "order": plan.order, "load_groups": groups,
            "interleave": plan.interleave, "model_loads": plan.model_loads,
            "model_loads_interleave_groups": plan.loads_across,
            "model_loads_within_group": len(plan.groups),
            "cluster": {"where": where, "nodes": nodes}, "plan": points,
            "never_placed_jobs": sum(1 for p in plan.points if p.unplaceable) * plan.cycles,
            "not_checked": list(plan_notes) + ([blind] if blind else []),
            "placement_not_checked_jobs": sum(not _checked(p, blind) for p in plan.points)
            * plan.cycles,
            "store": None if resumed is None else
            {"uri": resumed["uri"], "jobs_done": resumed["done"],
             "jobs_to_run": resumed.get("runs"), "rerun": resumed.get("rerun", False),
             "text": resumed["text"]}}


def _mem(p: PointPlan) -> tuple[str, str, str]:
    if p.estimate is None:
        return "?", "?", "?"
    e = p.estimate
    return human(e.weights_bytes), human(e.kv_bytes), human(e.total_bytes)


def render(plan: Plan, where: str, console: Console, verbose: bool,
           blind: str | None = None) -> None:
    pts = plan.points
    console.print(f"dry run of campaign {plan.name}: nothing is run and nothing is written")
    console.print(f"{plural(len(pts), 'point')} x {plural(plan.cycles, 'cycle')} = "
                  f"{plural(plan.jobs, 'job')}, order {plan.order}, in "
                  f"{plural(len(plan.groups), 'load group')} " +
                  ("(one model load each)" if not plan.across else
                   f"(up to {plan.model_loads} model loads: one per group per cycle)"))
    if plan.loads_across != len(plan.groups):  # the interleave choice costs model loads
        console.print(f"model loads: up to {plan.loads_across} with interleave: groups (cycle 0 of "
                      f"every group, then cycle 1, ...), {len(plan.groups)} with interleave: "
                      "within_group (each group's cycles together)")
    console.print(f"cluster: {escape(where)}")
    for n in plan.nodes:
        kinds = ", ".join(f"{name} {human(m) if m else '?'}" for name, m in
                          zip(n.gpu_names, n.gpu_memory_bytes)) or \
            ("no GPU" if n.gpus == 0 else f"{n.accelerator or 'GPU'} memory ?")
        console.print(f"  node {escape(n.name)}: {plural(n.gpus, 'GPU')} ({escape(kinds)}), "
                      f"{plural(float(n.cpus), 'CPU')}")
    t = Table(title="load groups")
    for col in ("group", "backend", "model", "dtype", "GPUs/job", "points", "jobs",
                "memory/GPU (max)", "never placed"):
        t.add_column(col, overflow="fold")
    for i, g in enumerate(plan.groups):
        known = [p.estimate.total_bytes for p in g.points if p.estimate is not None]
        never = sum(1 for p in g.points if p.unplaceable) * plan.cycles
        t.add_row(str(i + 1), g.backend, escape(g.model), g.dtype, str(g.gpus),
                  str(len(g.points)), str(len(g.points) * plan.cycles),
                  human(max(known)) if known else "?", str(never))
    console.print(t)
    if len(pts) <= POINTS_SHOWN or verbose:
        console.print(_points_table(plan, blind))
    else:
        console.print(f"({plural(len(pts), 'point')}: --verbose lists each one's memory)")
    console.print("memory/GPU = weights + KV cache for batch x (input + output) tokens, from "
                  "the model config and dtype; input = the longest prompt in the model's own "
                  "tokens (~: its tokenizer is not here, 3 characters a token); activations, "
                  "CUDA context and allocator slack come on top")
    unknown = sorted({p.unknown for p in pts if p.unknown})
    for why in unknown:
        console.print(f"no memory estimate: {escape(why)}")
    if any(not p.input_known for p in pts):
        console.print("input length unknown for HF datasets: KV cache counts output tokens "
                      "only (set max_input_tokens to bound it)")
    if blind:
        console.print(escape(blind))
    bad = [p for p in pts if p.unplaceable]
    if not bad:
        checked = sum(_checked(p, blind) for p in pts) * plan.cycles
        if blind is None:
            console.print("every job can be placed")
        elif checked:
            console.print(f"the other {plural(checked, 'job')} can be placed")
        return
    never = len(bad) * plan.cycles
    console.print(f"[red]{plural(never, 'job')} can never be placed[/]:")
    for p in bad[:20]:
        console.print(f"  {_describe(p.point)} ({plural(plan.cycles, 'job')}): "
                      f"{escape(str(p.unplaceable))}")
    if len(bad) > 20:
        console.print(f"  ... and {plural(len(bad) - 20, 'more point')}")


# shown in their own columns (or the load group's row): not repeated under "settings"
SHOWN = {"batch_size", "max_new_tokens", "resources.gpus_per_job", "backend", "model", "dtype"}


def _points_table(plan: Plan, blind: str | None) -> Table:
    t = Table(title="points (each runs once per cycle)")
    settings = _settings(plan)
    for col in ("group", "batch", "tokens in+out", "GPUs", *(["settings"] if settings else []),
                "weights", "KV cache", "memory/GPU", "placed"):
        t.add_column(col, overflow="fold")
    for i, p in enumerate(plan.points):
        w, kv, total = _mem(p)
        tokens = "?" if p.estimate is None else \
            f"{p.estimate.tokens // p.point.batch_size - p.point.max_new_tokens}" \
            f"{'' if p.input_exact else '~'}+{p.point.max_new_tokens}"
        t.add_row(str(p.group + 1), str(p.point.batch_size), tokens,
                  str(p.point.resources.gpus_per_job), *([escape(settings[i])] if settings else []),
                  w, kv, total, "not checked" if not _checked(p, blind) else
                  "no" if p.unplaceable else "yes")
    return t


def _settings(plan: Plan) -> list[str]:
    """Per point, the other settings that tell the points apart (`temperature=0.7,
    top_p=0.9`), as `llem compare` names them; [] when nothing else varies. Without it, points
    that differ only in a group's alternative read as the same row twice."""
    pts = Points.of((str(i), canonical(p.point.model_dump(mode="json")))
                    for i, p in enumerate(plan.points))
    params = [prm for prm in pts.params if prm.path not in SHOWN]
    if not params:
        return []
    return [pts.label(str(i), params) or "-" for i in range(len(plan.points))]


def _describe(p: Any) -> str:
    g = p.resources.gpus_per_job
    return escape(f"{p.backend} {p.model} {p.dtype} batch {p.batch_size} max_new_tokens "
                  f"{p.max_new_tokens}, {g} GPU{'' if g == 1 else 's'}")
