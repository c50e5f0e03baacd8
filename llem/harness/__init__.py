"""Inside the worker: the measurement of one job, written once for every backend.

runner (thermal gap, idle baseline, warmup, the workload inside an energy window, repeated
to a minimum length), workload (request arrivals and dispatch), result (the typed rows of a
job), runtime (the versions and host facts recorded with every row). Plain Python: the Ray
actor in llem.scheduler.worker only calls it, so a job runs inline in a unit test.
"""
