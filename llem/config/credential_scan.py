"""A grid file holds no credential: every value and key is scanned before anything else reads
the data, and each one found is refused at its line without being shown.

A token in a grid file would be hashed into job ids, stored with every row (a key even
becomes a column name), and an `environments.<backend>.env_vars` entry would be shown by Ray
in its logs and dashboard. What counts as a credential is llem.credentials' one list.
The scan costs one look per distinct string: an alias repeats an object, not the work.
"""

from __future__ import annotations

from typing import Any

from llem.config.yaml_source import Loc, SourceMap
from llem.credentials import secret_env_name, secret_name, token_shaped
from llem.errors import Problems

REFUSED = "llem does not take credentials from grid files (they would be stored with every result)"
HINT = "set HF_TOKEN (or another credential variable) in the environment, or LLEM_SECRETS_FILE"
ENV_HINT = "put it in LLEM_SECRETS_FILE, or HF_TOKEN and the like in the environment"


def refuse_credentials(data: Any, smap: SourceMap) -> None:
    """Raise ConfigError (all of them, one line each) for every credential in data."""
    problems = Problems()
    shaped: dict[int, bool] = {}  # id of a string -> token-shaped (strings are shared)

    def is_shaped(text: str) -> bool:
        if id(text) not in shaped:
            shaped[id(text)] = token_shaped(text)
        return shaped[id(text)]

    def walk(value: Any, loc: Loc) -> None:
        if isinstance(value, dict):
            env_vars = len(loc) == 3 and loc[0] == "environments" and loc[2] == "env_vars"
            for k, v in value.items():
                key = str(k)
                here = (*loc, key)
                if is_shaped(key):  # never named: the path would show it
                    problems.add(smap.error(loc, f"a key looks like a credential; {REFUSED}",
                                            hint=HINT, line=smap.line(here)))
                elif env_vars and secret_env_name(key):
                    problems.add(smap.error(here, "a credential variable: llem takes no "
                                            "credentials from grid files (Ray would show it "
                                            "in its logs and dashboard)", hint=ENV_HINT))
                elif isinstance(v, str) and ((secret_name(key) and v.strip()) or is_shaped(v)):
                    problems.add(smap.error(here, f"looks like a credential; {refused(here)}",
                                            hint=HINT))
                else:
                    walk(v, here)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, str) and is_shaped(v):
                    problems.add(smap.error((*loc, i), "looks like a credential; "
                                            f"{refused((*loc, i))}", hint=HINT))
                else:
                    walk(v, (*loc, i))

    def refused(loc: Loc) -> str:
        """Why, naming where the value came from: the grid file, or the flag that set it."""
        label = smap.setter(loc)
        if label is None:
            return REFUSED
        given = f"the {label.split()[0]} flag" if label.startswith("-") else "overrides"
        return f"llem does not take credentials from {given} (it would be stored with every " \
            "result)"

    walk(data, ())
    problems.check()
