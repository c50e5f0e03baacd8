"""Grid files, from YAML to jobs: the source map (yaml_source), the file as written
(campaign) and one point (models), fixed values, axes and groups (axes), the sweep,
per_backend values and experiments (parts, loaded), old names answered (names), command-line
overrides, loading and its checks (load, checks), and the lazy expansion into load groups
and jobs (grid, job).

Nothing here imports Ray or a backend library; config/ never names a backend (the registry in
llem.backends says which exist and what each checks).
"""
