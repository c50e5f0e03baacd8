"""Settings of the endpoint backend, written in a grid's `endpoint:` section:

    backends: [endpoint]
    models: [meta-llama/Llama-3.1-8B-Instruct]   # the name the server serves the model under
    endpoint:
      base_url: http://10.0.0.5:8000              # the server's root; a trailing /v1 is accepted
      api_key_env: MY_ENDPOINT_KEY                # optional: the NAME of the variable with the key

The key is read from that variable by the process that sends the requests, when it sends
them, and masked from then on (llem.credentials.remember): it is never in a grid, a row, a
log or an error; only the variable's name is recorded. Nothing is launched, so there is no
server log and no GPU check: the GPUs a job measures are those of its own node.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from llem.backends.base import GenerateSpec, LoadSpec, RequestRecord
from llem.credentials import PATTERNS, other_service_env, remember
from llem.errors import UserError

KEYS = ("base_url", "api_key_env")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ROUTES = ("/chat/completions", "/completions", "/models")  # what llem appends to base_url


@dataclass(frozen=True)
class EndpointSettings:
    """Where requests go. base_url is the server's root: no trailing slash, no /v1."""

    base_url: str
    model: str  # as the server names it (the grid's `models:` entry)
    api_key_env: str | None = None

    @property
    def models_url(self) -> str:
        return f"{self.base_url}/v1/models"

    def api_key(self) -> str | None:
        """The key from api_key_env, now (None without api_key_env); masked from now on."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if key:
            remember([key])
        why = key_problem(self.api_key_env, key)
        if why:
            raise UserError(f"endpoint.api_key_env: {why} (in the process that sends "
                            "requests)")
        return key

    def headers(self) -> dict[str, str]:
        """HTTP headers for each request: the bearer key where there is one."""
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def as_row(self) -> dict[str, Any]:
        """What a result row records: the URL, the served name, the key's variable name."""
        return {"base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env}


def _problem(engine: dict[str, Any]) -> tuple[str, str] | None:
    unknown = [k for k in engine if k not in KEYS]
    if unknown:
        return unknown[0], f"unknown endpoint setting; known: {', '.join(KEYS)}"
    url = engine.get("base_url")
    if url is not None and not isinstance(url, str):
        return "base_url", (f"must be the server's URL as text, e.g. http://10.0.0.5:8000 "
                            f"(got {type(url).__name__} {str(url)[:40]!r})")
    if not isinstance(url, str) or not url.strip():
        return "base_url", "the server's URL is required, e.g. http://10.0.0.5:8000"
    url = url.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in url):
        return "base_url", ("holds a space, a backslash or a control character; write the "
                            "URL alone, e.g. http://10.0.0.5:8000")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6 literal
        return "base_url", f"is not a URL ({exc}); e.g. http://10.0.0.5:8000 or http://[::1]:8000"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "base_url", "must be an http:// or https:// URL with a host"
    try:
        port = parts.port
    except ValueError:  # out of range, or not a number
        port = 0
    if port == 0 or parts.netloc.endswith(":"):
        return "base_url", "has a port that is not 1-65535 (e.g. http://10.0.0.5:8000)"
    if "@" in parts.netloc or "?" in url or "#" in url:
        return "base_url", ("must not carry a user, password, query or fragment (it is "
                            "recorded with every row; put a key in api_key_env)")
    route = next((r for r in ROUTES if parts.path.rstrip("/").endswith(r)), None)
    if route:  # requests went to .../v1/completions/v1/completions: every one a 404
        return "base_url", (f"ends with the route {route}, which llem adds itself: give the "
                            "server's root (e.g. http://10.0.0.5:8000 or .../v1)")
    name = engine.get("api_key_env")
    if name is not None and (not isinstance(name, str) or not _ENV_NAME.fullmatch(name)
                             or PATTERNS.search(name)):
        return "api_key_env", ("must be the NAME of an environment variable that holds the "
                               "key (e.g. MY_ENDPOINT_KEY), never the key itself")
    why = key_problem(name, os.environ.get(name)) if isinstance(name, str) else None
    if why and name in os.environ:  # set here, so sent as it is: unset may be set where
        return "api_key_env", why   # the workers run (a cluster's nodes)
    if name is not None and other_service_env(name):
        return "api_key_env", (f"{name} holds another service's credential, which would be "
                               "sent to base_url as the bearer key; put the endpoint's own key "
                               "in a variable of its own (e.g. MY_ENDPOINT_KEY) and name that")
    return None


def key_problem(name: str, value: str | None) -> str | None:
    """Why the variable's value cannot be sent as a bearer key (never quoting it): unset,
    empty, or holding a space or a control character (a newline: no HTTP header carries it,
    every request failed)."""
    if not value or not value.strip():
        state = "not set" if value is None else "empty"
        return f"the environment variable {name} is {state}: set it to the endpoint's key"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return (f"the environment variable {name} holds a space, a newline or a control "
                "character, which no HTTP header can carry: set it to the key alone")
    return None


def check_options(engine: dict[str, Any], *, gpus: int, batch_size: int,
                  streaming: bool) -> tuple[str, str] | None:
    """(key, why) for the first unusable endpoint setting, else None (the options protocol)."""
    return _problem(engine)


def settings(model: str, engine: dict[str, Any]) -> EndpointSettings:
    """The section as EndpointSettings; a bad one raises UserError (never echoing a value)."""
    problem = _problem(engine)
    if problem:
        raise UserError(f"endpoint.{problem[0]}: {problem[1]}")
    url = str(engine["base_url"]).strip().rstrip("/")
    url = url.removesuffix("/v1").rstrip("/")
    return EndpointSettings(url, model, engine.get("api_key_env"))


class EndpointBackend:
    """The registry's class for endpoint: it only holds the settings. Requests go through
    server mode's load client; an offline batch has nothing to run on."""

    reloads_in_process = True  # nothing is loaded

    def __init__(self, spec: LoadSpec) -> None:
        self.settings = settings(spec.model, spec.engine)

    def generate(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        raise UserError("the endpoint backend runs in server mode only: its requests go to "
                        f"{self.settings.base_url} through the load client")

    def close(self) -> None:
        pass


def credential_env(engine: dict[str, Any]) -> list[str]:
    """The variables whose values the worker must get (as credentials: masked, never in a
    runtime_env or a row): the key's variable named by api_key_env."""
    name = engine.get("api_key_env")
    return [str(name)] if name else []
