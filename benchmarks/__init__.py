"""OpsPortal's benchmark suite: `benchmarks/run` (or `python -m benchmarks`). See benchmarks/README.md.

Each benchmark is a module with NAME, TITLE, `run(args) -> dict` and optionally
`add_arguments(parser)`; the dict carries `tables` (common.Table), `figures`, `targets`.
Register a new one by adding its module path to BENCHMARKS, in the order they run.
"""

BENCHMARKS: list[str] = [
    "benchmarks.realtime",  # real-time scoring vs mlflow models serve
    "benchmarks.load",  # the real-time endpoint held at realtime's rate for 60 s, zero errors
    "benchmarks.batch",  # batch scoring end to end vs in-process predict_proba
    "benchmarks.drift",  # drift engine vs Evidently's DataDriftPreset
    "benchmarks.campaign_analysis",  # 1,000,000 outcome rows analysed in PostgreSQL
]
