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


def timed(fn: Callable[[], Any], repeat: int, blocks: int = 5) -> float:
    """Microseconds per `fn()` call: the lowest of `blocks` block medians (after 10 unmeasured calls).

    The machine is shared: a block that ran while another process held the CPU shows up as a high
    median, and the lowest block is the one that ran undisturbed.
    """
    for _ in range(10):
        fn()
    size = max(1, repeat // blocks)
    medians = []
    for _ in range(blocks):
        samples = []
        for _ in range(size):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
        medians.append(statistics.median(samples))
    return min(medians) * 1e6


AREAS = (  # first match wins: (label, substring of the function's file path)
    ("Django ORM + SQLite", "django/db/"),
    ("Django request handling, middleware", "django/"),
    ("DRF (request, auth, throttle, parsers, renderers)", "rest_framework/"),
    ("pandas", "pandas/"),
    ("NumPy", "numpy/"),
    ("ONNX Runtime", "onnxruntime"),
    ("scikit-learn", "sklearn/"),
    ("axes, whitenoise", "axes/"),
    ("axes, whitenoise", "whitenoise/"),
    ("OpsPortal scoring/", "/scoring/"),
    ("OpsPortal registry/", "/registry/"),
    ("OpsPortal accounts/", "/accounts/"),
    ("OpsPortal opsportal/", "/opsportal/"),
    ("json", "/json/"),
)


def areas(profiler: cProfile.Profile, requests: int) -> Table:
    """cProfile own time (tottime) summed by library: robust to refactors of the scoring code.

    Built-ins (C functions) are charged to the library that called them.
    """
    stats = pstats.Stats(profiler)
    totals: dict[str, float] = {}
    everything = 0.0
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in stats.stats.items():
        everything += tottime
        where = filename
        if filename == "~" and callers:  # a built-in: charge its biggest caller's library
            where = max(callers.items(), key=lambda kv: kv[1][2])[0][0]
        label = "Django test client (not in a real server)" if "django/test/" in where else next(
            (area for area, needle in AREAS if needle in where), "other (stdlib, builtins)")
        totals[label] = totals.get(label, 0.0) + tottime
    table = Table(f"Own time by library under cProfile, {requests} full requests (microseconds per request)",
                  ["library", "us / request", "share"])
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        table.rows.append([label, seconds / requests * 1e6, f"{seconds / everything:.0%}"])
    table.notes = ["cProfile slows Python code more than C code: read shares, not absolute times."]
    return table


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
    from scoring import inputs, log, services

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
    model, version_pk = selectors.model_for_scoring(user, "churn")
    version = services.resolve_version(model, alias=None, number=None)
    parsed = inputs.parse(bodies[0], version.signature)
    result = services.predict(model=model, body=bodies[0])
    renderer = JSONRenderer()

    def fresh_user_roles() -> None:
        fresh = User.objects.get(pk=user.pk)
        has_role(fresh, Role.DATA_SCIENTIST, Role.APPROVER, Role.BUSINESS_OWNER)

    # Steps of the request path, called on their own. The scoring code changes often: a step whose
    # function changed shape is reported as "n/a" instead of stopping the profile.
    sections: list[tuple[str, Callable[[], Any]]] = [
        ("token, user and roles (SHA-256 + one query)", lambda: account_selectors.token_for_secret(token)),
        ("role check without the token query (user + groups)", fresh_user_roles),
        ("model, visibility and champion (one query)", lambda: selectors.model_for_scoring(user, "churn")),
        ("scoring.services.ready_version_for (memory)",
         lambda: services.ready_version_for(model, version_pk, alias=None, number=None)),
        ("scoring.services._challenger", lambda: services._challenger(model)),
        ("scoring.inputs.parse", lambda: inputs.parse(bodies[0], version.signature)),
        ("scoring.services._score (model)", lambda: services._score(version, parsed.records)),
        ("scoring.services._log_rows", lambda: services._log_rows(version, parsed, result, "realtime")),
        ("JSON render of the response", lambda: renderer.render(result)),
    ]
    timings: list[tuple[str, float | None]] = []
    for name, fn in sections:
        try:
            timings.append((name, timed(fn, n)))
        except (AttributeError, TypeError, KeyError) as exc:
            timings.append((f"{name}: n/a ({type(exc).__name__}: {exc})"[:110], None))
    log.discard()

    # The log writer's batch insert, per row (off the response path, but on the same CPU).
    per_row_log: float | None = None
    try:
        log_rows = [row for _ in range(200) for row in services._log_rows(version, parsed, result, "realtime")]
        started = time.perf_counter()
        log._write(log_rows)
        per_row_log = (time.perf_counter() - started) / len(log_rows) * 1e6
    except (AttributeError, TypeError) as exc:
        print(f"log writer not timed: {exc}", file=sys.stderr)

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

    explained = sum(t for _, t in timings if t is not None)
    table = Table(f"One prediction, in-process ({n} calls each in 5 blocks: lowest block median, microseconds)",
                  ["section", "us", "share of full request"])
    for name, us in timings:
        table.rows.append([name, us, "-" if us is None else f"{us / full:.0%}"])
    table.rows += [
        ["sum of the sections above", explained, f"{explained / full:.0%}"],
        ["scoring.services.predict (whole service call)", services_predict, f"{services_predict / full:.0%}"],
        ["full request: Django test client (middleware, DRF, view)", full, "100%"],
        ["outside scoring.services.predict (middleware, DRF, auth, view)", full - services_predict,
         f"{(full - services_predict) / full:.0%}"],
        ["log writer: bulk insert, per row (background thread)", per_row_log, "-"],
    ]
    table.notes = [f"SQL queries per request through Django's cursor: {len(query_list)} (the token and model "
                   "lookups run on the driver's cursor, opsportal.hotsql, and are not in Django's query log)",
                   *(f"  {q}" for q in query_list)]
    print(render_table(table))
    print()
    print(render_table(areas(profiler, n)))

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
