"""Held load: the real-time endpoint at the real-time benchmark's rate for 60 s, on loopback, zero errors.

The rate defaults to the OpsPortal rate the `realtime` benchmark last measured on this machine
(`benchmarks/results/latest.json`, its headline figure), else 200 requests/s; `--rate`
overrides. A paced, open-loop generator (a fixed schedule per connection, keep-alive) holds it for
`--seconds` (60): every response must be 200 with predictions, and the achieved rate must stay
within 5 % of the asked one. Bounded: it stops at the end of the window whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import realtime
from benchmarks.common import LOOPBACK, REPO_ROOT, Table, free_port, latency_summary_ms, log, stopwatch

NAME = "load"
TITLE = "Held load: real-time scoring at the benchmark's rate for 60 s, zero errors"
DEFAULT_RATE = 200.0
LATEST = REPO_ROOT / "benchmarks" / "results" / "latest.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=None, help="requests per second to hold (default: realtime's)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to hold it (default 60)")
    parser.add_argument("--load-connections", type=int, default=8, help="keep-alive connections (default 8)")


def benchmark_rate() -> float:
    """The OpsPortal rate of the last real-time benchmark on this machine."""
    try:
        runs = json.loads(LATEST.read_text())["benchmarks"]
        return float(next(b for b in runs if b["name"] == "realtime")["figures"]["opsportal_rps"])
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return DEFAULT_RATE


def _connection_loop(port: int, path: str, headers: dict[str, str], bodies: list[bytes], *, start: float,
                     interval: float, end: float, offset: float, out: dict[str, Any]) -> None:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    due, index = start + offset, 0
    while due < end:
        time.sleep(max(0.0, due - time.monotonic()))
        sent = time.monotonic()
        try:
            conn.request("POST", path, bodies[index % len(bodies)], headers)
            response = conn.getresponse()
            payload = response.read()
            ok = response.status == 200 and b'"predictions"' in payload
            key = "ok" if ok else f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as error:
            key = type(error).__name__
            conn.close()
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        done = time.monotonic()
        with out["lock"]:
            out["counts"][key] = out["counts"].get(key, 0) + 1
            out["latencies"].append(done - sent)
            out["late"] = max(out["late"], sent - due)
        due, index = due + interval, index + 1
    conn.close()


def hold(port: int, path: str, headers: dict[str, str], bodies: list[bytes], *, rate: float, seconds: float,
         connections: int) -> dict[str, Any]:
    out: dict[str, Any] = {"lock": threading.Lock(), "counts": {}, "latencies": [], "late": 0.0}
    interval = connections / rate
    start = time.monotonic() + 0.5
    end = start + seconds
    threads = [threading.Thread(target=_connection_loop, args=(port, path, headers, bodies), kwargs={
        "start": start, "interval": interval, "end": end, "offset": i * interval / connections, "out": out})
        for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    # Over the real elapsed time: a generator that fell behind and caught up late does not count as holding.
    elapsed = max(time.monotonic() - start, seconds)
    total = sum(out["counts"].values())
    return {"asked_rps": rate, "achieved_rps": total / elapsed, "elapsed_s": elapsed,
            "requests": total, "good": out["counts"].get("ok", 0),
            "errors": total - out["counts"].get("ok", 0),
            "error_breakdown": {k: v for k, v in out["counts"].items() if k != "ok"},
            "latency_ms": latency_summary_ms(out["latencies"]), "max_lateness_ms": out["late"] * 1000}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import skops.io as sio

    rate = args.rate or benchmark_rate()
    frame = realtime.load_telco()
    work = realtime.WORK
    work.mkdir(parents=True, exist_ok=True)
    data = frame.drop(columns=["customerID"])
    pipeline = realtime.fit_pipeline(data)
    ids, rows = realtime.request_rows(frame, realtime.REQUEST_ROWS)
    skops_path, reference_path = work / "load_churn.skops", work / "load_ref.csv"
    skops_path.write_bytes(sio.dumps(pipeline))
    data.to_csv(reference_path, index=False)
    with stopwatch() as setup:
        portal = realtime.setup_portal(skops_path, reference_path)
    port = free_port()
    bodies = [json.dumps({"rows": [row], "ids": [cid]}).encode() for cid, row in zip(ids, rows, strict=True)]
    # the CPUs of the real-time benchmark whose rate is held: the server on the same core(s), the generator apart
    generator_cpus, server_cpus = realtime.cpu_split(realtime.plan_from(args))
    contender = realtime.portal_contender("load", "OpsPortal (gunicorn)", port, portal["token"], bodies, log_rate="1",
                                         cpus=server_cpus)
    log(f"holding {rate:.0f} requests/s for {args.seconds:.0f}s on {args.load_connections} connections")
    with contender.server as server:  # __enter__ starts it
        server.wait_listening(120, "/healthz")
        headers = contender.target.request_headers()
        for body in bodies[:20]:  # warm the model cache and the connection
            realtime.loadgen.request_once(contender.target, body)
        own_cpus = os.sched_getaffinity(0)
        if generator_cpus:  # the generator's threads run in this process
            os.sched_setaffinity(0, generator_cpus)
        try:
            result = hold(port, contender.target.path, headers, bodies, rate=rate, seconds=args.seconds,
                          connections=args.load_connections)
        finally:
            os.sched_setaffinity(0, own_cpus)
    held = result["errors"] == 0 and result["achieved_rps"] >= 0.95 * rate
    rows_out = [["asked rate (requests/s)", f"{rate:.0f}"], ["achieved rate", f"{result['achieved_rps']:.1f}"],
                ["requests", result["requests"]], ["errors", result["errors"]],
                ["median / p99 latency (ms)", f"{result['latency_ms'].get('p50', 0):.1f} / "
                                              f"{result['latency_ms'].get('p99', 0):.1f}"],
                ["held with zero errors", "yes" if held else "NO"]]
    return {"name": NAME, "title": TITLE, "figures": {**result, "held": held},
            "targets": [{"figure": "errors_at_benchmark_rate", "measured": result["errors"], "target": "0",
                         "met": held}],
            "setup_seconds": {"portal": setup["seconds"]},
            "tables": [Table(TITLE, ["figure", "value"], rows_out, notes=[f"results in {Path(realtime.WORK)}"])]}
