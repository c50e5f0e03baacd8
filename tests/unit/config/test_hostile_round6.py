"""Hostile input, round six: server mode's `server:` and the endpoint backend's settings.
A base_url that every request would fail on (an API route llem appends itself, an empty
query, a space, an unclosed IPv6 bracket: an internal error) and an api_key_env whose
variable is set to what no HTTP header carries are refused at their line, never echoing a
value; the edges that are fine pass."""

from __future__ import annotations

import pytest

from tests.support.grids import error_of, load

HEAD = "name: t\nmodels: [m]\nbackends: [endpoint]\n"
SERVER = "grid: {mode: server}\nserver: {rate: 1, requests: 4}\n"
SECRET = "PlantedR6pw0123"


def _endpoint(section: str) -> str:
    return error_of(f"endpoint: {section}\n" + SERVER, head=HEAD)


# --- base_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "want"), [
    # every request went to .../v1/completions/v1/completions: a 404 each, after Ray started
    ("http://h:8000/v1/completions", "ends with the route /completions, which llem adds"),
    ("http://h:8000/v1/chat/completions/", "ends with the route /chat/completions"),
    ("https://h/proxy/v1/models", "ends with the route /models"),
    # an empty query or fragment: requests went to http://h:8000?/v1/completions
    ("http://h:8000?", "must not carry a user, password, query or fragment"),
    ("http://h:8000#", "must not carry a user, password, query or fragment"),
    ("http://@h:8000", "must not carry a user, password, query or fragment"),
    # a space or a control character inside: every request failed (or hit another host)
    ("http://127.0.0 .1:8000", "holds a space, a backslash or a control character"),
    ("http://h:8000/a b", "holds a space, a backslash or a control character"),
    ("http://h\\\\x:8000", "holds a space, a backslash or a control character"),
    ("http://h:8000/v1\\x00", "holds a space, a backslash or a control character"),
    ("http://h:8000\\tx", "holds a space, a backslash"),  # said "a port that is not 1-65535"
    # an unclosed IPv6 bracket: an internal ValueError
    ("http://[::1", "is not a URL (Invalid IPv6 URL)"),
    ("http://[::1:8000/v1", "is not a URL (Invalid IPv6 URL)"),
])
def test_a_base_url_no_request_could_use(url: str, want: str) -> None:
    msg = _endpoint(f'{{base_url: "{url}"}}')
    assert msg.startswith("grid.yaml:4: 'endpoint.base_url': ") and want in msg, msg
    assert "\n" not in msg and "Traceback" not in msg


@pytest.mark.parametrize("url", [
    "http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/", "HTTP://h:1",
    "https://h/prefix/v1", "http://[::1]:8000", "http://bücher.example:8000", " http://h:1 ",
    "http://10.0.0.5:8000/openai/v1", "http://h:8000/completions-proxy",
])
def test_a_base_url_that_is_fine(url: str) -> None:
    load(f'endpoint: {{base_url: "{url}"}}\n' + SERVER, head=HEAD)


def test_a_password_in_base_url_is_never_shown() -> None:
    for url in (f"http://user:{SECRET}@h:8000", f"http://:{SECRET}@h:8000/v1",
                f"http://h:8000/v1?key={SECRET}"):
        msg = _endpoint(f'{{base_url: "{url}"}}')
        assert "'endpoint.base_url'" in msg and SECRET not in msg, msg


# --- api_key_env ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "want"), [
    ("", "the environment variable LLEM_R6_KEY is empty: set it to the endpoint's key"),
    ("   ", "the environment variable LLEM_R6_KEY is empty"),  # sent as "Bearer    "
    (f"{SECRET}\n", "LLEM_R6_KEY holds a space, a newline or a control character"),
    (f"{SECRET}\nX-Other: 1", "holds a space, a newline or a control character, which no HTTP"),
    (f"Bearer {SECRET}", "holds a space, a newline"),  # sent as "Bearer Bearer ..."
])
def test_a_key_variable_no_header_carries(value: str, want: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_R6_KEY", value)  # every request failed, after Ray started
    msg = _endpoint("{base_url: 'http://h:8000', api_key_env: LLEM_R6_KEY}")
    assert msg.startswith("grid.yaml:4: 'endpoint.api_key_env': ") and want in msg, msg
    assert SECRET not in msg


def test_a_key_variable_unset_here_may_be_set_where_the_workers_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLEM_R6_KEY", raising=False)  # a cluster's nodes may hold it
    load("endpoint: {base_url: 'http://h:8000', api_key_env: LLEM_R6_KEY}\n" + SERVER, head=HEAD)
    monkeypatch.setenv("LLEM_R6_KEY", SECRET)
    load("endpoint: {base_url: 'http://h:8000', api_key_env: LLEM_R6_KEY}\n" + SERVER, head=HEAD)
