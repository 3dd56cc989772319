"""What every benchmark shares: paths, timing and percentiles, tables, JSON results, server processes.

Nothing here imports Django: the driver stays outside the portal's settings, so a benchmark
can never touch the real `var/` database. Portal code runs in subprocesses with their own
environment (see `realtime.py`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "benchmarks"
BENCH_VAR = REPO_ROOT / "var" / "bench"
RESULTS_DIR = BENCH_DIR / "results"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PORTAL_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
LOOPBACK = "127.0.0.1"


class BenchmarkError(RuntimeError):
    """A benchmark cannot run (missing data, a server that will not start); the message says why."""


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the tables."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        raise BenchmarkError(
            f"{path} is absent. The benchmarks read the public datasets from ../shared/data beside the "
            f"checkout (here: {SHARED_DATA}); put {name} there and run again."
        )
    return path


# --- timing ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p90, p95, p99, mean and max of durations given in seconds, in milliseconds."""
    if not seconds:
        return {k: math.nan for k in ("p50", "p90", "p95", "p99", "mean", "max")}
    ms = [s * 1000 for s in seconds]
    return {"p50": percentile(ms, 50), "p90": percentile(ms, 90), "p95": percentile(ms, 95),
            "p99": percentile(ms, 99), "mean": sum(ms) / len(ms), "max": max(ms)}


@contextlib.contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """`with stopwatch() as t: ...` then `t["seconds"]`."""
    box: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - started


def children_cpu_seconds() -> float:
    """User + system CPU of every child process this process has waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide CPU seconds from /proc/stat (all cores summed)."""

    busy: float
    steal: float

    @staticmethod
    def take() -> CpuSnapshot:
        ticks = os.sysconf("SC_CLK_TCK")
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return CpuSnapshot(math.nan, math.nan)
        user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
        return CpuSnapshot((user + nice + system + irq + softirq) / ticks, steal / ticks)


def other_load_cores(before: CpuSnapshot, after: CpuSnapshot, seconds: float, ours: float) -> dict[str, float]:
    """Cores used by everything but `ours` (CPU seconds of the server and the generator) over `seconds`,
    and cores stolen by the hypervisor: both should be near 0 on a quiet machine."""
    if seconds <= 0:
        return {"other_cores": math.nan, "steal_cores": math.nan}
    return {"other_cores": max(0.0, (after.busy - before.busy - ours) / seconds),
            "steal_cores": (after.steal - before.steal) / seconds}


# --- tables and results ---------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "notes": self.notes}


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_table(table: Table) -> str:
    cells = [[fmt(v) for v in row] for row in table.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(table.columns)]

    def line(values: Sequence[str]) -> str:
        first, *rest = values
        return "  ".join([first.ljust(widths[0])] + [v.rjust(w) for v, w in zip(rest, widths[1:], strict=True)])

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [table.title, rule, line(table.columns), rule, *(line(r) for r in cells), rule]
    out += [f"  {note}" for note in table.notes]
    return "\n".join(out)


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory_gib = round(kib / 1024**2, 1)
    return {"cpu_model": model, "cpus": os.cpu_count(), "memory_gib": memory_gib,
            "kernel": platform.release(), "python": platform.python_version(), "load_average_at_start": os.getloadavg()}


def code_version() -> dict[str, Any]:
    """The commit measured and whether the work tree had uncommitted changes (read-only git calls)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks")
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_changes_outside_benchmarks": None if status is None else bool(status)}


def save_results(payload: dict[str, Any]) -> tuple[Path, Path]:
    """Write `results/latest.json` and a timestamped copy; returns both paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    latest, dated = RESULTS_DIR / "latest.json", RESULTS_DIR / f"{stamp}.json"
    dated.write_text(text)
    latest.write_text(text)
    return latest, dated


def json_safe(value: Any) -> Any:
    """NaN and infinities become null, so the results are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# --- processes ------------------------------------------------------------------------------------

# `--priority N`: the servers and the load generator run at nice -N. The kernel here groups tasks by
# session for scheduling (autogroup), so a plain nice value only counts inside its own session: the
# session's autogroup gets the same nice value, which is what makes it count against other sessions.
PRIORITY = {"nice": 0}


def apply_priority(pid: int) -> None:
    """Give `pid` (the leader of a session started for a server or the generator) the run's priority."""
    nice = PRIORITY["nice"]
    if not nice:
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))



def fresh_dir(path: Path) -> Path:
    """Empty `path` (only ever under var/bench) and return it."""
    if BENCH_VAR.resolve() not in path.resolve().parents:
        raise BenchmarkError(f"refusing to wipe {path}: scratch folders live under {BENCH_VAR}")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def run_step(name: str, argv: list[str], *, env: dict[str, str] | None = None, timeout: float,
             log_path: Path, cwd: Path = REPO_ROOT) -> str:
    """Run one setup command to completion (bounded by `timeout`); its output goes to `log_path`.

    Returns the output; raises BenchmarkError with the log's tail when it fails or overruns.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc, grace=5)
            raise BenchmarkError(f"{name} took longer than {timeout:.0f}s; log: {log_path}\n{tail(log_path)}") from None
        except BaseException:
            _kill_group(proc, grace=5)
            raise
    if code != 0:
        raise BenchmarkError(f"{name} failed (exit {code}); log: {log_path}\n{tail(log_path)}")
    return log_path.read_text(errors="replace")


def _kill_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM the process group this process leads (started with start_new_session), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # workers of a server may outlive their master: sweep the group either way
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


_RUNNING: list[Server] = []


class Server:
    """A server process in its own session (process group), stopped with everything it forked."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path, port: int,
                 cwd: Path = REPO_ROOT, cpus: set[int] | None = None) -> None:
        self.name, self.argv, self.env, self.log_path, self.port, self.cwd = name, argv, env, log_path, port, cwd
        self.cpus = cpus  # CPUs the server and everything it forks may run on (None: all)
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cpus = self.cpus
        with self.log_path.open("w") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        _RUNNING.append(self)
        apply_priority(self.proc.pid)  # its autogroup covers the workers it forks, before or after this
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, timeout: float, path: str = "/") -> float:
        """Wait until `GET path` answers HTTP (any status); returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise BenchmarkError(f"{self.name} exited while starting; log: {self.log_path}\n{tail(self.log_path)}")
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2)
            try:
                conn.request("GET", path)
                conn.getresponse().read()
                return time.monotonic() - started
            except OSError:
                time.sleep(0.25)
            finally:
                conn.close()
        raise BenchmarkError(f"{self.name} not listening on {LOOPBACK}:{self.port} after {timeout:.0f}s; "
                             f"log: {self.log_path}\n{tail(self.log_path)}")

    def pids(self) -> list[int]:
        """Every live process in the server's process group (master and workers)."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[2]) == self.proc.pid:  # field 5 of stat: process group
                    found.append(int(entry.name))
        return found

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds consumed so far by the live processes of the group."""
        ticks = os.sysconf("SC_CLK_TCK")
        user = system = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
        return user / ticks, system / ticks

    def cpu_seconds(self) -> float:
        """User + system CPU consumed so far by the live processes of the group."""
        return sum(self.cpu_times())

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                for text in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if text.startswith("VmRSS:"):
                        total += int(text.split()[1])
        return total / 1024

    def stop(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc, grace=15)
        if self in _RUNNING:
            _RUNNING.remove(self)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def stop_all_servers() -> None:
    """Stop every server still running (at exit, on Ctrl+C or SIGTERM)."""
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl+C, so every `finally` and `with` stops its servers."""

    def unwind(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, unwind)
    signal.signal(signal.SIGHUP, unwind)
