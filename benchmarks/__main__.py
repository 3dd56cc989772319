"""Run the benchmark suite: print every figure as a table, save results/latest.json and a timestamped copy.

    benchmarks/run                   every registered benchmark
    benchmarks/run --only realtime   one of them
    benchmarks/run --quick           short phases, to check the machinery (numbers not for reporting)
    benchmarks/run --list
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from benchmarks import BENCHMARKS, loadgen
from benchmarks.common import (
    PRIORITY,
    BenchmarkError,
    Table,
    code_version,
    install_signal_handlers,
    json_safe,
    log,
    machine_info,
    render_table,
    save_results,
    stop_all_servers,
)


def modules() -> list[ModuleType]:
    return [importlib.import_module(path) for path in BENCHMARKS]


def parser_for(found: list[ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmarks/run", description="OpsPortal benchmark suite.")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="short phases: checks the machinery, not for reporting")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                        help="HTTP load generator: wrk when installed (auto), else Python http.client")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--priority", type=int, default=0, metavar="N",
                        help="lower the nice value of the run (servers and generator inherit it) by N, 1..19, so "
                             "other processes on a shared machine disturb it less (needs root; default: off)")
    for module in found:
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    found = modules()
    args = parser_for(found).parse_args(argv)
    if args.list:
        for module in found:
            print(f"{module.NAME:12} {module.TITLE}")
        return 0
    selected = [m for m in found if not args.only or m.NAME in args.only]
    unknown = set(args.only or []) - {m.NAME for m in found}
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; see --list", file=sys.stderr)
        return 2
    args.loadgen_tool = args.loadgen if args.loadgen != "auto" else ("wrk" if loadgen.wrk_available() else "python")

    install_signal_handlers()
    if args.priority:
        if not 1 <= args.priority <= 19:
            print("--priority must be 1..19", file=sys.stderr)
            return 2
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -args.priority)  # this process: the Python load generator
        except PermissionError:
            print("--priority needs root (a negative nice value)", file=sys.stderr)
            return 2
        PRIORITY["nice"] = -args.priority
        log(f"servers and load generator at nice -{args.priority} (process and session autogroup)")
    started = time.perf_counter()
    payload: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": machine_info(), "code": code_version(), "quick": args.quick,
                               "nice": -args.priority, "benchmarks": []}
    failed = missed = False
    try:
        for module in selected:
            log(f"=== {module.NAME}: {module.TITLE}")
            began = time.perf_counter()
            try:
                result = module.run(args)
            except BenchmarkError as exc:
                failed = True
                print(f"\n{module.NAME}: could not run: {exc}", file=sys.stderr)
                payload["benchmarks"].append({"name": module.NAME, "title": module.TITLE, "error": str(exc)})
                continue
            except Exception:
                failed = True
                traceback.print_exc()
                payload["benchmarks"].append({"name": module.NAME, "title": module.TITLE,
                                              "error": traceback.format_exc(limit=5)})
                continue
            result["duration_s"] = time.perf_counter() - began
            tables: list[Table] = result.pop("tables", [])
            print()
            for table in tables:
                print(render_table(table))
                print()
            result["tables"] = [t.as_dict() for t in tables]
            missed = missed or any(not t.get("passed", True) for t in result.get("targets", []))
            payload["benchmarks"].append(result)
    finally:
        stop_all_servers()
    payload["duration_s"] = time.perf_counter() - started
    if args.quick:
        payload["note"] = "--quick run: short phases, numbers not for reporting"
    latest, dated = save_results(json_safe(payload))
    print(f"results: {latest} (copy: {dated.name}); total {payload['duration_s']:.0f}s")
    if failed:
        return 2
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all_servers()
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
