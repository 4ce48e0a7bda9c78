"""``sslbench sweep``: a grid of methods x suites x seeds x ``--grid`` values, each point one ordinary run.

grid.py (the points), plan.py (resolve, preflight, done / resume / run), skip.py (records and checkpoints in
``--out``, outcomes), point.py (one point, the same function in every executor), local.py, submitit_backend.py,
ray_backend.py (executors), signals.py, options.py, orchestrate.py (the command's flow and tables).
"""
