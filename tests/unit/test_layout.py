"""The package's shape, measured: one folder per stage, layers that import only downwards, no
import circle, no function-local import that merely hides one, at most 8 modules at the top
of llem/, every module under ~400 lines and imported by something.

Layers, top to bottom (a package may import its own modules and any lower layer):

    cli, api, doctor, __main__      the command line and the library entry point
    scheduler                       Ray: driver, workers, placement (the only Ray user)
    harness, report                 a job inside its worker; reports over the store
    store, envs                     the Parquet store; backend environments
    measure                         NVML (gpu.py only), RAPL, thermal, statistics
    config                          grid files -> campaigns, points, jobs
    models                          model shapes, FLOPs, memory, built-in models
    prompts                         prompt sets and datasets
    backends                        the backend interface, registry and implementations
    errors, credentials, version,   what every layer may use
    paths

Packages of one layer may import each other (without a circle). A function-local import of a
llem module is allowed only when that module loads a heavy
library at import time (Ray, DuckDB, plotly, pyarrow, torch, ...), so a command that does not
need it does not pay for it.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PKG = ROOT / "llem"
LAYERS = [
    {"cli", "api", "doctor", "__main__"},
    {"scheduler"},
    {"harness", "report"},
    {"store", "envs"},
    {"measure"},
    {"config"},
    {"models"},
    {"prompts"},
    {"backends"},
    {"errors", "credentials", "version", "paths"},
]
HEAVY = {"ray", "duckdb", "plotly", "kaleido", "pyarrow", "torch", "transformers", "vllm",
         "tensorrt_llm", "datasets", "pandas", "huggingface_hub", "tokenizers", "peft",
         "selenium", "scipy"}
MAX_TOP = 8
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


MODS = modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODS:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        raise AssertionError("relative imports are not used in llem")
    base = node.module or ""
    return [f"{base}.{a.name}" for a in node.names] + [base]


@cache
def imports(mod: str) -> tuple[set[str], set[str], set[str]]:
    """(llem modules imported at module level, llem modules imported inside functions,
    third-party top-level packages imported at module level)."""
    tree = ast.parse(MODS[mod].read_text())
    top: set[str] = set()
    local: set[str] = set()
    third: set[str] = set()
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}
    typing_only = {id(n) for s in ast.walk(tree) if isinstance(s, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(s.test) for n in ast.walk(s)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in typing_only:
            continue
        for t in _targets(node):
            if t == "llem" or t.startswith("llem."):
                r = _resolve(t)
                if r and r != mod and r != "llem":  # llem/__init__: the package itself
                    (local if id(node) in inner else top).add(r)
            elif id(node) not in inner:
                third.add(t.split(".")[0])
    return top, local, third


def layer(mod: str) -> int:
    head = mod.split(".")[1] if "." in mod else "__init__"
    for i, names in enumerate(LAYERS):
        if head in names:
            return i
    raise AssertionError(f"{mod}: in no layer; add its folder to LAYERS (and the README)")


@cache
def loads_heavy(mod: str, seen: frozenset[str] = frozenset()) -> bool:
    top, _, third = imports(mod)
    parents = {".".join(mod.split(".")[:i]) for i in range(2, mod.count(".") + 1)}
    return bool(third & HEAVY) or any(loads_heavy(t, seen | {mod}) for t in
                                      (top | parents) - seen - {mod} if t in MODS)


def test_every_module_sits_in_a_layer_and_imports_only_downwards() -> None:
    wrong = []
    for mod in MODS:
        if mod == "llem":
            continue
        top, local, _ = imports(mod)
        for t in top | local:
            same = t.split(".")[:2] == mod.split(".")[:2]
            if not same and layer(t) < layer(mod):
                wrong.append(f"{mod} -> {t}")
    assert not wrong, "imports that run up the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_circle() -> None:
    graph = {m: imports(m)[0] | imports(m)[1] for m in MODS}
    sys.setrecursionlimit(10_000)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in graph[m]:
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join(
                    stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_function_local_imports_only_defer_a_heavy_library() -> None:
    hidden = [f"{m} imports {t} inside a function, and {t} loads no heavy library"
              for m in MODS for t in imports(m)[1] if not loads_heavy(t)]
    assert not hidden, "\n".join(sorted(hidden))


def test_at_most_eight_modules_at_the_top() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= MAX_TOP, top


def test_modules_are_small_and_each_is_imported() -> None:
    big = [f"{m}: {n} lines" for m, p in MODS.items()
           if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not big, big
    used = {t for m in MODS for t in imports(m)[0] | imports(m)[1]}
    for bench in (ROOT / "benchmarks").glob("*.py"):  # the simulator serves the benchmarks
        for node in ast.walk(ast.parse(bench.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llem."):
                used.add(_resolve(node.module or "") or "")
    # the backends' and the commands' modules are named in their registries, imported by name
    registry = (PKG / "backends" / "__init__.py").read_text() + \
        (PKG / "cli" / "values.py").read_text()
    entry = {"llem", "llem.__main__", "llem.api"}
    orphans = [m for m in MODS if m not in used and m not in entry and
               f'"{m}:' not in registry and f'"{m}"' not in registry and
               not any(t.startswith(m + ".") for t in used) and MODS[m].name != "__init__.py"]
    assert not orphans, f"modules nothing imports: {orphans}"


def test_tests_mirror_the_package_and_import_no_other_test() -> None:
    """tests/unit/<package>/, tests/integration/ (real Ray), tests/e2e/ (the CLI), helpers in
    tests/support/; a test file imports helpers, never another test file."""
    tests = ROOT / "tests"
    allowed = {"unit", "integration", "e2e", "support", "__pycache__"}
    assert {p.name for p in tests.iterdir() if p.is_dir()} <= allowed
    assert not list(tests.glob("test_*.py")), "tests sit in unit/, integration/ or e2e/"
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    for d in (tests / "unit").iterdir():
        if d.is_dir() and d.name != "__pycache__":
            assert d.name in packages, f"tests/unit/{d.name} mirrors no llem package"
    wrong = []
    for f in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.") \
                    and not (node.module or "").startswith("tests.support"):
                wrong.append(f"{f.relative_to(ROOT)} imports {node.module}")
    assert not wrong, wrong


@pytest.mark.parametrize("pkg", sorted({p.parent for p in PKG.rglob("__init__.py")}))
def test_each_package_says_what_it_is_for(pkg: Path) -> None:
    doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text()))
    assert doc and len(doc) > 40, f"{pkg}/__init__.py needs a docstring saying what it is for"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
