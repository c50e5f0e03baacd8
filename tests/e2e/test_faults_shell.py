"""No shell anywhere in llem: every subprocess is an argument list (issue: hostile input).

A grid file's values (model paths, names, engine args) reach subprocesses (env builds,
backend probes); with a shell, a quote in one would run a command. The ruff rules S602/S604/
S605/S609 in pyproject.toml catch this at lint time; this test catches it without ruff.
"""

from __future__ import annotations

import ast
import tomllib

from tests.support.paths import ROOT

SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("os", "execl"), ("os", "spawnl")}


def _offences(tree: ast.AST, name: str) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                          and kw.value.value is False):
                out.append(f"{name}:{node.lineno}: shell={ast.unparse(kw.value)}")
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                (f.value.id, f.attr) in SHELL_CALLS:
            out.append(f"{name}:{node.lineno}: {f.value.id}.{f.attr}")
    return out


def test_no_shell_in_the_package() -> None:
    files = sorted((ROOT / "llem").rglob("*.py"))
    assert len(files) > 20
    offences = [o for p in files for o in _offences(ast.parse(p.read_text()), str(p))]
    assert offences == []


def test_the_checker_finds_a_shell() -> None:
    bad = "import os, subprocess\nsubprocess.run(cmd, shell=True)\nos.system('ls')\n" \
          "subprocess.Popen(x, shell=flag)\nsubprocess.run(['ls'], shell=False)\n"
    assert [o.split(": ", 1)[1] for o in _offences(ast.parse(bad), "x")] == \
        ["shell=True", "os.system", "shell=flag"]


def test_ruff_bans_shell() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"S602", "S604", "S605", "S609"} <= set(lint["select"])
    ignored = set(lint.get("per-file-ignores", {}).get("llem/**", [])) | set(lint["ignore"])
    assert not ignored & {"S602", "S604", "S605", "S609"}
