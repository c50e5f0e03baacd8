"""Server mode, the load side: llem measures an OpenAI-compatible server (vllm serve,
transformers serve, trtllm-serve, or an endpoint that already runs) under load, as the
ML.ENERGY benchmark, `vllm bench serve`, guidellm and NVIDIA AIPerf do.

client (llem's own streaming client: per-chunk times, the server's usage counts, errors as
records), profiles (when requests are sent: constant, poisson, gamma, concurrency,
synchronous, throughput; ramp-up), loadgen (one load level driven from synchronous code,
with an over-saturation stop, and the sweep's rate levels), window (the steady-state window
between the end of the ramp and the last send, and the per-request and per-job figures,
energy attributed). launch starts a backend's own server in the worker and stops its whole
process tree (proctree), checking that the job's GPUs got their memory back.
"""

from llem.harness.server.client import Client, GenParams, Reply, Timeouts
from llem.harness.server.launch import (
    PortInUseError,
    ServerDiedError,
    ServerError,
    ServerProcess,
    ServerStartError,
    backend_server,
)
from llem.harness.server.loadgen import (
    LoadResult,
    Saturation,
    completion_rate,
    run_load,
    sweep_rates,
)
from llem.harness.server.proctree import StopReport
from llem.harness.server.profiles import (
    Concurrency,
    Constant,
    Gamma,
    Limit,
    Poisson,
    Profile,
    Ramp,
    Synchronous,
    Throughput,
    from_spec,
)
from llem.harness.server.window import SLO, job_figures, request_figures, steady_window

__all__ = ["SLO", "Client", "Concurrency", "Constant", "Gamma", "GenParams", "Limit",
           "LoadResult", "Poisson", "PortInUseError", "Profile", "Ramp", "Reply", "Saturation",
           "ServerDiedError", "ServerError", "ServerProcess", "ServerStartError", "StopReport",
           "Synchronous", "Throughput", "Timeouts", "backend_server", "completion_rate",
           "from_spec", "job_figures", "request_figures", "run_load", "steady_window",
           "sweep_rates"]
