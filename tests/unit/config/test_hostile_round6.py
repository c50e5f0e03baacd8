"""Hostile input, round six: server mode's `server:` and the endpoint backend's settings.
A base_url that every request would fail on (an API route llem appends itself, an empty
query, a space, an unclosed IPv6 bracket: an internal error) and an api_key_env whose
variable is set to what no HTTP header carries are refused at their line, never echoing a
value; the edges that are fine pass."""

from __future__ import annotations

import pytest

from llem.config.grid import iter_jobs
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


# --- server: a level that could not be measured, or would be stopped every time -------------


@pytest.mark.parametrize(("server", "want"), [
    # no window (first measured send to last): each was an ok row with no figure in it
    ("{rate: 2, requests: 1}", ":6: 'server.requests': requests: 1 leaves a level no window"),
    ("{profile: sweep, requests: 1}", ":6: 'server.requests': requests: 1 leaves a level"),
    ("{profile: concurrency, concurrency: 8, requests: 4}",
     ":6: 'server.requests': requests (4) must be more than concurrency (8)"),
    ("{profile: concurrency, concurrency: 4, requests: 4}", "must be more than concurrency (4)"),
    ("{profile: sweep, concurrency: 64, requests: 32}", "must be more than concurrency (64)"),
    ("{rate: 0.5, duration_s: 2}",
     ":6: 'server.duration_s': rate 0.5 for duration_s 2 sends about 1 request a level"),
    # past measurement.job_timeout_s (3600 s): the driver stopped it every time, an hour in
    ("{rate: 2, requests: 10000}", ":6: 'server.requests': a level takes about 5000 s "
                                   "(requests 10000 at rate 2), more than measurement."
                                   "job_timeout_s (3600 s)"),
    ("{profile: concurrency, concurrency: 4, duration_s: 7200}",
     "a level takes about 7200 s (duration_s 7200), more than measurement.job_timeout_s"),
    ("{rate: 1, requests: 3000, ramp_s: 700}", "about 3700 s (requests 3000 at rate 1 after "
                                               "ramp_s 700)"),
    ("{rate: 0.001, requests: 10000000}", "a level takes about 1e+10 s"),
])
def test_a_level_that_could_not_be_measured(server: str, want: str) -> None:
    msg = error_of(f"endpoint: {{base_url: 'http://h:1'}}\ngrid: {{mode: server}}\n"
                   f"server: {server}\n", head=HEAD)
    assert want in msg and "\n" not in msg, msg


def test_the_line_of_the_level_that_is_too_long() -> None:
    msg = error_of("endpoint: {base_url: 'http://h:1'}\ngrid: {mode: server}\nserver:\n"
                   "  rate: [1, 100]\n  requests: 5000\n", head=HEAD)
    assert msg.startswith("grid.yaml:7: 'server.rate.0': a level takes about 5000 s"), msg


@pytest.mark.parametrize("server", [
    "{rate: 2, requests: 2}", "{profile: concurrency, concurrency: 4, requests: 5}",
    "{profile: concurrency, concurrency: 100000, duration_s: 5}", "{rate: 1, duration_s: 2}",
    "{profile: sweep, requests: 2}", "{rate: 1, requests: 3000, ramp_s: 600}",
    "{profile: [poisson, concurrency], rate: 1, concurrency: 2, requests: 4}",
    "{rate: 1, requests: 4, duration_s: 86400}",  # requests end it first: a few seconds
])
def test_a_level_at_its_edges_passes(server: str) -> None:
    load(f"endpoint: {{base_url: 'http://h:1'}}\ngrid: {{mode: server}}\nserver: {server}\n",
         head=HEAD)
    load("endpoint: {base_url: 'http://h:1'}\ngrid: {mode: server}\nmeasurement: "
         "{job_timeout_s: 90000}\nserver: {rate: 1, duration_s: 86400}\n", head=HEAD)


# --- models: the name a running server serves, not a path of this machine -------------------


def test_an_endpoint_model_is_the_served_name_as_written() -> None:
    from llem.config.grid import iter_jobs

    loaded = load("endpoint: {base_url: 'http://h:1'}\n" + SERVER,  # `vllm serve /data/llama`
                  head="name: t\nmodels: [/data/models/llama, ./llama, ../m, gpt-4o]\n"
                       "backends: [endpoint]\n")  # "model path ... does not exist" before
    assert sorted(j.point.model for j in iter_jobs(loaded)) == [
        "../m", "./llama", "/data/models/llama", "gpt-4o"]


def test_a_path_a_library_loads_must_still_exist() -> None:
    msg = error_of("endpoint: {base_url: 'http://h:1'}\n",
                   head="name: t\nmodels: [/data/models/llama]\nbackends: [endpoint, "
                        "transformers]\n")
    assert "'models.0': model path /data/models/llama does not exist" in msg, msg


# --- generate: what llem's request body writes itself --------------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    # generate.<key> overwrote what the client writes: the row said max_new_tokens 64, 8 sent
    (SERVER.replace("{mode: server}", "{mode: server, generate.max_tokens: 8}"),
     "'grid.generate.max_tokens': 'max_tokens' is a field of the request body llem's client "
     "writes itself in server mode: set max_new_tokens (remove generate.max_tokens)"),
    (SERVER.replace("{mode: server}", "{mode: server, generate.n: [4, 1]}"),
     "'grid.generate.n.0': 'n' is a field of the request body"),  # 4 completions, 1 request
    (SERVER.replace("{mode: server}", "{mode: server, generate.stream: false}"),
     "'stream' is a field of the request body llem's client writes itself in server mode: "
     "every request streams"),
    (SERVER.replace("{mode: server}", "{mode: server, generate: {model: other}}"),
     "'model' is a field of the request body"),
    (SERVER.replace("{mode: server}", "{mode: server, generate.temperature: 0.7}"),
     ": set temperature"),  # the row said temperature 0.0
    (SERVER.replace("{mode: server}", "{mode: server, generate.stream_options: "
                    "{include_usage: false}}"), "'stream_options' is a field"),
    (SERVER.replace("{mode: server}", "{mode: server, generate.echo: true}"),
     "an echoed prompt would be counted as output"),
])
def test_a_generate_key_the_request_body_writes_itself(body: str, want: str) -> None:
    msg = error_of("endpoint: {base_url: 'http://h:1'}\n" + body, head=HEAD)
    assert want in msg and "\n" not in msg, msg


def test_what_the_request_body_leaves_to_generate_passes() -> None:
    load("endpoint: {base_url: 'http://h:1'}\n" + SERVER.replace(
        "{mode: server}", "{mode: server, generate: {stop: ['\\n'], presence_penalty: 0.5, "
                          "logit_bias: {'50256': -100}}}"), head=HEAD)


@pytest.mark.parametrize(("grid", "want"), [
    ("{mode: server, dtype: [float16, bfloat16]}", ":5: 'grid.dtype.0': backend 'endpoint' "
     "sends requests to a server that already runs, in the dtype it was started with"),
    ("{mode: server, dtype: float16}", ":5: 'grid.dtype': backend 'endpoint' sends requests"),
])
def test_a_dtype_the_endpoint_cannot_choose(grid: str, want: str) -> None:
    msg = error_of(f"endpoint: {{base_url: 'http://h:1'}}\ngrid: {grid}\n"
                   "server: {rate: 1, requests: 4}\n", head=HEAD)  # two runs of one server,
    assert want in msg, msg                                      # labelled with two dtypes


def test_a_dtype_scoped_to_a_backend_that_loads_the_model_passes() -> None:
    load("endpoint: {base_url: 'http://h:1'}\ngrid: {mode: server}\nserver: {rate: 1, "
         "requests: 4}\nper_backend: {transformers: {dtype: [float16, auto]}}\n",
         head="name: t\nmodels: [llem:tiny]\nbackends: [endpoint, transformers]\n")
    load("endpoint: {base_url: 'http://h:1'}\ngrid: {mode: server, dtype: auto}\n"
         "server: {rate: 1, requests: 4}\n", head=HEAD)


# --- the endpoint's offline points ----------------------------------------------------------

URL = "endpoint: {base_url: 'http://h:8000'}\n"
LOAD = "server: {rate: 1, requests: 4}\n"
MIXED = "name: t\nmodels: [llem:tiny]\nbackends: [transformers, endpoint]\n"
ONLY = "runs in server mode only (it sends requests to a server that already runs)"


@pytest.mark.parametrize(("head", "body", "want"), [
    # no mode: each job failed after Ray started ("the endpoint backend runs in server mode
    # only"), at the line that names the backend
    (HEAD, URL, f"grid.yaml:3: 'backends.0': backend 'endpoint' {ONLY}: its points here "
                "have no mode: server"),
    (MIXED, URL, "grid.yaml:3: 'backends.1': backend 'endpoint' " + ONLY),
    # both modes crossed with the endpoint: refused at the offline value, as a mode: server
    # that reaches a backend without a server is (not dropped: the grid asked for the point)
    (MIXED, URL + LOAD + "grid:\n  mode: [offline, server]\n",
     f"grid.yaml:7: 'grid.mode.0': backend 'endpoint' {ONLY}: the offline points this value "
     "gives it would fail"),
    (MIXED, URL + LOAD + "grid:\n  mode: [offline, server]\n",
     "(set grid: {mode: server} (with a server: section), or give endpoint alone mode: server: "
     "per_backend: {endpoint: {mode: server}} (or an experiment))"),
    ("name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n",
     "experiments:\n  - {backend: endpoint, " + URL.strip() + "}\n",
     f"grid.yaml:5: 'experiments.0.backend': backend 'endpoint' {ONLY}"),
    ("name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n",
     "experiments:\n  - {mode: server, backend: endpoint, " + URL.strip() + ", "
     + LOAD.strip() + "}\n  - {backends: [transformers, endpoint], " + URL.strip() + "}\n",
     f"grid.yaml:6: 'experiments.1.backends.1': backend 'endpoint' {ONLY}"),
])
def test_an_endpoint_point_in_offline_mode(head: str, body: str, want: str) -> None:
    assert want in error_of(body, head=head)


@pytest.mark.parametrize("body", [
    URL + LOAD + "grid: {mode: server}\n",
    URL + LOAD + "grid:\n  mode: [offline, server]\nper_backend:\n  endpoint: {mode: server}\n",
    URL + LOAD + "per_backend:\n  endpoint: {mode: server}\n",
    URL + LOAD + "grid:\n  mode: [offline, server]\n"
    "exclude: [{backend: endpoint, mode: offline}]\n",
])
def test_an_endpoint_in_server_mode_beside_offline_points_passes(body: str) -> None:
    points = [(j.point.backend, j.point.mode) for j in iter_jobs(load(body, head=MIXED))]
    assert ("endpoint", "server") in points and ("endpoint", "offline") not in points
