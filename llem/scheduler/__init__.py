"""The Ray driver and everything that knows Ray: the loop (driver), its bookkeeping (state),
the worker actors (pool, worker), where a job may run and whether it ever can (placement,
plan for the dry run), who ran beside whom (neighbours), dashboard metrics (metrics), the
cluster's nodes (cluster) and Ray Jobs (submit). No other package imports ray."""
