"""Where one real-time prediction spends its time, inside the portal process (no HTTP server).

    .venv/bin/python -m benchmarks.profile_realtime [--requests 300]

Reuses the throwaway portal that `benchmarks/run --only realtime` left in var/bench/portal (the
model registered, validated and promoted, a token in var/bench/realtime/portal-setup.json).
Three views of the same request:

1. sections: each step of the request path called on its own, many times, median microseconds;
2. the full request through Django's test client (all middleware, DRF, the view), and the share
   of it the sections explain;
3. cProfile over the full requests: top functions by own time and by cumulative time
   (whole listing in var/bench/realtime/profile.txt).

The background prediction-log writer runs on its own thread in the real server; here its
batch insert is timed separately (`log write, per row`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import PORTAL_PYTHON, BenchmarkError, Table, render_table
from benchmarks.realtime import PORTAL_VAR, REQUEST_ROWS, WORK, load_telco, portal_env, request_rows


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median microseconds of `fn()` over `repeat` calls (after 10 unmeasured calls)."""
    for _ in range(10):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_realtime")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement (300)")
    args = parser.parse_args(argv)
    setup = WORK / "portal-setup.json"
    if not setup.is_file() or not (PORTAL_VAR / "opsportal.sqlite3").is_file():
        raise BenchmarkError(f"no benchmark portal in {PORTAL_VAR}: run `benchmarks/run --only realtime` first")
    if os.path.realpath(sys.executable) != os.path.realpath(PORTAL_PYTHON):
        print(f"note: running with {sys.executable}, not {PORTAL_PYTHON}", file=sys.stderr)
    os.environ.update(portal_env())
    token = json.loads(setup.read_text())["token"]
    ids, rows = request_rows(load_telco(), REQUEST_ROWS)
    bodies = [{"rows": [row], "ids": [cid]} for cid, row in zip(ids, rows, strict=True)]
    raw_bodies = [json.dumps(b).encode() for b in bodies]

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.renderers import JSONRenderer

    from accounts import selectors as account_selectors
    from opsportal.roles import Role, has_role
    from registry import selectors
    from scoring import cache, inputs, log, services

    n = args.requests
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    url = "/api/v1/models/churn/predict"
    turn = {"i": 0}

    def next_raw() -> bytes:
        turn["i"] += 1
        return raw_bodies[turn["i"] % len(raw_bodies)]

    def full_request() -> None:
        response = client.post(url, data=next_raw(), content_type="application/json")
        if response.status_code != 200:
            raise BenchmarkError(f"predict answered {response.status_code}: {response.content[:500]!r}")

    full_request()  # loads the model into this process's cache
    with CaptureQueriesContext(connection) as queries:
        full_request()
    query_list = [q["sql"][:140] for q in queries.captured_queries]

    user = User.objects.get(username="bench-author")
    model = selectors.model_for(user, "churn")
    version = services.resolve_version(model, alias=None, number=None)
    predictor = cache.predictor_for(version)
    parsed = inputs.parse(bodies[0], version.signature)
    result = services.predict(model=model, body=bodies[0])
    renderer = JSONRenderer()

    def fresh_user_roles() -> None:
        fresh = User.objects.get(pk=user.pk)
        has_role(fresh, Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)

    sections = [
        ("token lookup (SHA-256 + query, with user)", lambda: account_selectors.token_for_secret(token)),
        ("role check (user + groups queries)", fresh_user_roles),
        ("model_for (visibility query)", lambda: selectors.model_for(user, "churn")),
        ("resolve_version (alias query)", lambda: services.resolve_version(model, alias=None, number=None)),
        ("_challenger (scoring config query)", lambda: services._challenger(model)),
        ("inputs.parse (checks + DataFrame)", lambda: inputs.parse(bodies[0], version.signature)),
        (f"predictor.predict ({predictor.__class__.__name__})", lambda: predictor.predict(parsed.frame)),
        ("predictor.predict_proba", lambda: predictor.predict_proba(parsed.frame)),
        ("_log_rows (PredictionLog objects)",
         lambda: services._log_rows(version, parsed, result, "realtime")),
        ("JSON render of the response", lambda: renderer.render(result)),
    ]
    timings = []
    for name, fn in sections:
        timings.append((name, timed(fn, n)))
    log.discard()

    # The log writer's batch insert, per row (off the response path, but on the same CPU).
    log_rows = [row for _ in range(200) for row in services._log_rows(version, parsed, result, "realtime")]
    started = time.perf_counter()
    log._write(log_rows)
    per_row_log = (time.perf_counter() - started) / len(log_rows) * 1e6

    services_predict = timed(lambda: services.predict(model=model, body=bodies[turn["i"] % len(bodies)]), n)
    log.discard()
    full = timed(full_request, n)
    log.discard()

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        full_request()
    profiler.disable()
    log.discard()

    explained = sum(t for _, t in timings)
    table = Table(f"One prediction, in-process (median of {n} calls each, microseconds)",
                  ["section", "us", "share of full request"])
    for name, us in timings:
        table.rows.append([name, us, f"{us / full:.0%}"])
    table.rows += [
        ["sum of the sections above", explained, f"{explained / full:.0%}"],
        ["scoring.services.predict (whole service call)", services_predict, f"{services_predict / full:.0%}"],
        ["full request: Django test client (middleware, DRF, view)", full, "100%"],
        ["framework remainder (full - sections)", full - explained, f"{(full - explained) / full:.0%}"],
        ["log writer: bulk insert, per row (background thread)", per_row_log, "-"],
    ]
    table.notes = [f"SQL queries per request: {len(query_list)}", *(f"  {q}" for q in query_list)]
    print(render_table(table))

    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    out = WORK / "profile.txt"
    out.write_text(text.getvalue())
    print()
    print(f"cProfile, {n} full requests: top 15 by own time (whole listing: {out})")
    brief = io.StringIO()
    pstats.Stats(profiler, stream=brief).sort_stats("tottime").print_stats(15)
    print("\n".join(line for line in brief.getvalue().splitlines()[5:] if line.strip()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
