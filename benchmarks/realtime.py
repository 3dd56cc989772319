"""Real-time scoring: OpsPortal's predict endpoint vs `mlflow models serve`, same model, same machine.

The model is the Telco churn pipeline (impute + scale numeric, one-hot categorical, logistic
regression), fitted once here and handed to both servers: to OpsPortal as skops through the
registry services (validated, promoted to production through the approval flow), to MLflow with
`mlflow.sklearn.save_model` in a separate venv. The servers run one after the other, each alone
on the machine with 2 worker processes, and face the same load generator with the same rows.

Phases per server: correctness check (every request row once, predictions compared with the
local pipeline), warm-up (8 connections), single client (1 connection, sequential), throughput
(8 connections). Only loopback; every phase is bounded in time; servers stop in `finally`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from benchmarks.common import (
    BENCH_VAR,
    LOOPBACK,
    PORTAL_PYTHON,
    REPO_ROOT,
    BenchmarkError,
    CpuSnapshot,
    Server,
    Table,
    free_port,
    fresh_dir,
    log,
    other_load_cores,
    run_step,
    shared_dataset,
    stopwatch,
)

NAME = "realtime"
TITLE = "Real-time scoring: OpsPortal vs mlflow models serve (Telco churn, single-row requests)"

MLFLOW_VENV = BENCH_VAR / "mlflow-venv"
WORK = BENCH_VAR / "realtime"
PORTAL_VAR = BENCH_VAR / "portal"
WORKERS = 2  # worker processes, the same for both servers
PORTAL_THREADS = 4  # threads per gunicorn worker, as `manage.py up` runs the portal
REQUEST_ROWS = 100  # distinct customers cycled through by the load generator
TARGET_RATIO = 10.0  # the targets
TARGET_MEDIAN_MS = 5.0
TARGET_LOG_COST = 0.05  # prediction logging may cost at most this share of real-time throughput
NOISY_CORES = 0.15  # other processes' CPU (cores) during a phase above which it may be disturbed...
SATURATED = 0.8  # ...when, with them, the machine was busier than this share of its cores (else they used idle CPU)
PHASE_ATTEMPTS = 2  # a noisy phase runs at most this many times; the quietest attempt is kept
RETRY_BUDGET = 4  # repeated phases per run at most: on a machine that stays busy, retrying only costs time
# Isolation: the throwaway portal never reads the developer's database, broker, cache or storage.
PORTAL_ENV_SCRUB = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "ARTIFACT_STORAGE", "MEDIA_ROOT", "STATIC_ROOT",
                    "SECRET_KEY", "HTTPS", "ALLOWED_HOSTS", "LOG_LEVEL", "SCORING_BACKGROUND_THREADS",
                    "SCORING_CACHE_MAX_MB", "API_THROTTLE_USER", "DJANGO_SETTINGS_MODULE")
# DRF's per-user throttle defaults to 6000/min (100 req/s per web process): a load test would measure
# 429s. The throttle still runs on every request (cache read and write); its limit is only out of reach.
BENCH_THROTTLE_USER = "100000000/min"


@dataclass
class Plan:
    connections: int
    warmup_s: float
    single_s: float  # per round
    throughput_s: float  # per round
    rounds: int
    loadgen: str
    pin: bool = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("realtime")
    group.add_argument("--connections", type=int, default=8, help="concurrent connections for throughput (8)")
    group.add_argument("--rounds", type=int, default=2, help="interleaved rounds per server and mode (2)")
    group.add_argument("--throughput-seconds", type=float, default=10.0, help="throughput phase per round (10)")
    group.add_argument("--single-seconds", type=float, default=5.0, help="single-client phase per round (5)")
    group.add_argument("--warmup-seconds", type=float, default=3.0, help="warm-up at full concurrency (3)")
    group.add_argument("--full-stack-database-url", default="postgres://postgres@127.0.0.1:5432/opsportal_realtime",
                       help="PostgreSQL database for the full-stack portal: DROPPED and re-created at every run")
    group.add_argument("--full-stack-redis-url", default="redis://127.0.0.1:6379/5",
                       help="Redis database for its broker (the next one holds its cache): both FLUSHED every run")
    group.add_argument("--no-full-stack", action="store_true",
                       help="measure only the embedded portal (SQLite), not the PostgreSQL + Redis one")
    group.add_argument("--no-pin", action="store_true",
                       help="let servers and load generator share every CPU (default: the generator gets CPU 0, "
                            "each server the others)")


def plan_from(args: argparse.Namespace) -> Plan:
    if not 1 <= args.rounds <= 10 or not 1 <= args.connections <= 256:
        raise BenchmarkError("--rounds must be 1..10 and --connections 1..256")
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    if args.quick:
        return Plan(args.connections, 1.0, 2.0, 3.0, 1, args.loadgen_tool, pin)
    return Plan(args.connections, args.warmup_seconds, args.single_seconds, args.throughput_seconds, args.rounds,
                args.loadgen_tool, pin)


def cpu_split(plan: Plan) -> tuple[set[int] | None, set[int] | None]:
    """(load generator CPUs, server CPUs): the first CPU for the generator, the rest for the server under test.

    On a small machine a load generator sharing the server's cores takes CPU in proportion to the
    request rate, so it slows the faster server more: pinned, each server gets the same cores and
    the generator none of them.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not plan.pin or len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


# --- the model and the rows -------------------------------------------------------------------------


def load_telco() -> Any:
    import pandas as pd

    frame = pd.read_csv(shared_dataset("telco_churn.csv"))
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    return frame


def fit_pipeline(data: Any) -> Any:
    """The issue's pipeline, on every column but customerID, target Churn."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = data.drop(columns=["Churn"])
    categorical = [c for c in features.columns if features[c].dtype == object]
    numeric = [c for c in features.columns if c not in categorical]
    prepare = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    model = Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=1000))])
    return model.fit(features, data["Churn"])


def request_rows(frame: Any, count: int) -> tuple[list[str], list[dict[str, Any]]]:
    """`count` customers (fixed seed), as JSON-ready dicts: NaN as null, numbers as JSON numbers."""
    sample = frame.sample(n=min(count, len(frame)), random_state=20261122)
    ids = sample["customerID"].astype(str).tolist()
    rows = json.loads(sample.drop(columns=["customerID", "Churn"]).to_json(orient="records"))
    return ids, rows


# --- the MLflow environment --------------------------------------------------------------------------


def pinned_versions() -> dict[str, str]:
    text = (REPO_ROOT / "requirements.txt").read_text()
    found = {}
    for package in ("scikit-learn", "pandas", "numpy"):
        match = re.search(rf"^{re.escape(package)}==([^\s#]+)", text, flags=re.MULTILINE)
        if match is None:
            raise BenchmarkError(f"requirements.txt pins no {package}; cannot match the MLflow venv to the portal")
        found[package] = match.group(1)
    if int(found["pandas"].split(".")[0]) >= 3:
        raise BenchmarkError(f"requirements.txt pins pandas {found['pandas']}; the MLflow venv needs pandas < 3")
    return found


def ensure_mlflow_venv() -> dict[str, str]:
    """Create var/bench/mlflow-venv once (pip install mlflow + the portal's scikit-learn, pandas, numpy)."""
    pins = pinned_versions()
    spec = ["mlflow", *(f"{name}=={version}" for name, version in pins.items())]
    stamp = MLFLOW_VENV / ".benchmark-requirements"
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists() or not stamp.exists() or stamp.read_text() != " ".join(spec):
        log(f"installing {' '.join(spec)} into {MLFLOW_VENV} (first run only, a few minutes)")
        if not python.exists():
            run_step("python3 -m venv", ["python3", "-m", "venv", str(MLFLOW_VENV)], timeout=120,
                     log_path=BENCH_VAR / "logs" / "mlflow-venv.log")
        run_step("pip install mlflow", [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                        *spec], timeout=1200, log_path=BENCH_VAR / "logs" / "mlflow-pip.log")
        stamp.write_text(" ".join(spec))
    probe = run_step("mlflow venv versions", [str(python), "-c", (
        "import json, mlflow, sklearn, pandas, numpy; print(json.dumps({'mlflow': mlflow.__version__, "
        "'scikit-learn': sklearn.__version__, 'pandas': pandas.__version__, 'numpy': numpy.__version__}))")],
        timeout=120, log_path=BENCH_VAR / "logs" / "mlflow-versions.log")
    versions = json.loads(probe.strip().splitlines()[-1])
    if versions["scikit-learn"] != pins["scikit-learn"]:
        raise BenchmarkError(f"MLflow venv has scikit-learn {versions['scikit-learn']}, the portal "
                             f"{pins['scikit-learn']}: delete {MLFLOW_VENV} and run again")
    return versions


def save_mlflow_model(pipeline_path: Path, features_path: Path) -> Path:
    model_dir = WORK / "mlflow-model"
    run_step("mlflow.sklearn.save_model",
             [str(MLFLOW_VENV / "bin" / "python"), str(REPO_ROOT / "benchmarks" / "_mlflow_model.py"),
              str(pipeline_path), str(features_path), str(model_dir)],
             env=_mlflow_env(), timeout=300, log_path=WORK / "logs" / "mlflow-save.log")
    return model_dir


def _mlflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{MLFLOW_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(MLFLOW_VENV)
    env["MLFLOW_TRACKING_URI"] = f"file://{WORK / 'mlruns'}"  # nothing of ours lands in the cwd
    env.pop("PYTHONPATH", None)
    return env


# --- the OpsPortal side --------------------------------------------------------------------------------


def portal_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PORTAL_ENV_SCRUB}
    env.update({
        "DJANGO_SETTINGS_MODULE": "opsportal.settings",
        "OPSPORTAL_VAR_DIR": str(PORTAL_VAR),
        "DEBUG": "false",
        "PREDICTION_LOG_SAMPLE_RATE": "1",
        "DATABASE_URL": f"sqlite:///{PORTAL_VAR / 'opsportal.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "CACHE_URL": "locmem://",
        "ARTIFACT_STORAGE": "filesystem",
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_USER": BENCH_THROTTLE_USER,
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def setup_portal(skops_path: Path, reference_path: Path) -> dict[str, Any]:
    fresh_dir(PORTAL_VAR)
    env = portal_env()
    logs = WORK / "logs"
    with stopwatch() as migrate:
        run_step("manage.py migrate", [str(PORTAL_PYTHON), "manage.py", "migrate", "--noinput"], env=env,
                 timeout=300, log_path=logs / "portal-migrate.log")
    out = WORK / "portal-setup.json"
    run_step("portal setup (register, validate, promote, token)",
             [str(PORTAL_PYTHON), str(REPO_ROOT / "benchmarks" / "_portal_setup.py"), str(skops_path),
              str(reference_path), str(out)], env=env, timeout=900, log_path=logs / "portal-setup.log")
    info = json.loads(out.read_text())
    info["timings_s"]["migrate"] = migrate["seconds"]
    return info


FULL_PORTAL_VAR = BENCH_VAR / "realtime-portal-full"


def full_stack_env(args: argparse.Namespace) -> dict[str, str]:
    """The production shape: PostgreSQL (prediction log by COPY), Redis broker and Redis cache (throttle)."""
    redis_url = args.full_stack_redis_url.rstrip("/")
    base, _, number = redis_url.rpartition("/")
    return {**portal_env(), "OPSPORTAL_VAR_DIR": str(FULL_PORTAL_VAR), "DATABASE_URL": args.full_stack_database_url,
            "CELERY_BROKER_URL": redis_url, "CACHE_URL": f"{base}/{int(number) + 1}"}


def setup_full_stack(args: argparse.Namespace, skops_path: Path, reference_path: Path) -> dict[str, Any]:
    from benchmarks.batch import reset_broker, reset_database

    fresh_dir(FULL_PORTAL_VAR)
    env = full_stack_env(args)
    reset_database(args.full_stack_database_url)
    for url in (env["CELERY_BROKER_URL"], env["CACHE_URL"]):
        reset_broker(url)
    logs = WORK / "logs"
    run_step("full stack: manage.py migrate", [str(PORTAL_PYTHON), "manage.py", "migrate", "--noinput"], env=env,
             timeout=300, log_path=logs / "full-migrate.log")
    out = WORK / "full-setup.json"
    run_step("full stack: portal setup", [str(PORTAL_PYTHON), str(REPO_ROOT / "benchmarks" / "_portal_setup.py"),
                                          str(skops_path), str(reference_path), str(out)],
             env=env, timeout=900, log_path=logs / "full-setup.log")
    return {**json.loads(out.read_text()), "env": env}


def prediction_log_rows() -> int | None:
    try:
        with sqlite3.connect(PORTAL_VAR / "opsportal.sqlite3", timeout=10) as db:
            return int(db.execute("SELECT COUNT(*) FROM scoring_predictionlog").fetchone()[0])
    except sqlite3.Error:
        return None


# --- measuring one server --------------------------------------------------------------------------------


def check_predictions(target: loadgen.Target, expected: list[str], extract: Any) -> dict[str, Any]:
    """Every request row once, sequentially: 200, a prediction, and the same label as the local pipeline."""
    agree, server_ms, seconds = 0, [], []
    for index, body in enumerate(target.bodies):
        status, data, took = loadgen.request_once(target, body)
        if status != 200 or target.expect not in data:
            raise BenchmarkError(f"{target.name} answered {status} to a valid row: {data[:1000]!r}")
        payload = json.loads(data)
        agree += extract(payload) == expected[index]
        if "latency_ms" in payload:
            server_ms.append(float(payload["latency_ms"]))
        seconds.append(took)
    if agree != len(expected):
        raise BenchmarkError(f"{target.name} disagrees with the fitted pipeline on {len(expected) - agree} of "
                             f"{len(expected)} rows: not the same model")
    return {"rows_checked": len(expected), "labels_agree": agree,
            "first_request_ms": seconds[0] * 1000,
            "server_reported_latency_ms_median": statistics.median(server_ms) if server_ms else None}


MODES = (("close", False), ("keepalive", True))  # headline first: one request per connection
MODE_LABELS = {"close": "new connection per request", "keepalive": "keep-alive connections"}
PHASES = ("single_client", "throughput")


@dataclass
class Contender:
    """A server under test, its requests, and how to read a label out of its answer."""

    key: str
    label: str
    server: Server
    target: loadgen.Target
    health_path: str
    extract: Any


_retries = {"left": RETRY_BUDGET}


def measure_phase(subject: Contender, everyone: list[Contender], *, label: str, connections: int,
                  seconds: float, plan: Plan) -> dict[str, Any]:
    """One load phase, with the server's CPU and the machine's other load over it.

    Other load = machine busy CPU minus every contender's processes (the idle one too) minus the
    generator. A phase is disturbed when that load exceeds NOISY_CORES while the machine as a whole
    was near saturation (other processes then took CPU from the server or the generator, rather than
    idle cycles); such a phase runs once more and the quieter attempt is kept (both are recorded),
    and the report warns if it stayed disturbed.
    """
    attempts = []
    for attempt in range(1, PHASE_ATTEMPTS + 1):
        if attempt > 1:
            if _retries["left"] <= 0:
                break
            _retries["left"] -= 1
        (user0, system0), all_before, machine_before = (subject.server.cpu_times(),
                                                        sum(c.server.cpu_seconds() for c in everyone),
                                                        CpuSnapshot.take())
        result = loadgen.run(subject.target, connections=connections, seconds=seconds, tool=plan.loadgen,
                             work_dir=WORK / "load")
        machine_after = CpuSnapshot.take()
        user1, system1 = subject.server.cpu_times()
        cpu = (user1 - user0) + (system1 - system0)
        servers_cpu = sum(c.server.cpu_seconds() for c in everyone) - all_before
        noise = other_load_cores(machine_before, machine_after, result.duration_s,
                                 servers_cpu + result.generator_cpu_s)
        busy = (servers_cpu + result.generator_cpu_s) / result.duration_s + noise["other_cores"]
        disturbed = (noise["other_cores"] > NOISY_CORES or noise["steal_cores"] > NOISY_CORES) and (
            busy > SATURATED * (os.cpu_count() or 1) or noise["steal_cores"] > NOISY_CORES)
        attempts.append({**result.as_dict(), **noise, "server_cpu_s": cpu, "server_system_cpu_s": system1 - system0,
                         "machine_busy_cores": busy, "disturbed": disturbed})
        if not disturbed:
            break
        if attempt < PHASE_ATTEMPTS and _retries["left"] > 0:
            log(f"{subject.label}: {label}: the machine was busy ({noise['other_cores']:.2f} other cores of "
                f"{busy:.2f} busy); measuring again")
            time.sleep(2)
    best = min(attempts, key=lambda a: (a["disturbed"], a["other_cores"] + a["steal_cores"]))
    return {**best, "attempts": len(attempts), "discarded_attempts": [a for a in attempts if a is not best]}


def start_and_warm(contender: Contender, expected: list[str], plan: Plan) -> dict[str, Any]:
    server, target = contender.server, contender.target
    server.start()
    info: dict[str, Any] = {"startup_s": server.wait_listening(timeout=120, path=contender.health_path)}
    log(f"{contender.label}: listening after {info['startup_s']:.1f}s; checking {len(target.bodies)} rows")
    info["check"] = check_predictions(target, expected, contender.extract)
    info["server_keeps_connections_alive"] = loadgen.server_keeps_alive(target)
    log(f"{contender.label}: warm-up {plan.warmup_s:.0f}s at {plan.connections} connections")
    info["warmup"] = loadgen.run(target, connections=plan.connections, seconds=plan.warmup_s, tool=plan.loadgen,
                                 work_dir=WORK / "load").as_dict()
    return info


def measure_all(contenders: list[Contender], expected: list[str], plan: Plan) -> dict[str, dict[str, Any]]:
    """Start both servers, then interleave: per round, per mode, each server's single-client and throughput phase.

    Interleaving spreads slow drifts of the machine over both servers instead of charging them
    to whichever ran second; the spread between rounds shows how steady the numbers are.
    """
    (WORK / "load").mkdir(parents=True, exist_ok=True)
    _retries["left"] = RETRY_BUDGET
    results: dict[str, dict[str, Any]] = {c.key: {"rounds": []} for c in contenders}
    try:
        for contender in contenders:
            results[contender.key].update(start_and_warm(contender, expected, plan))
        for number in range(1, plan.rounds + 1):
            for contender in contenders:
                results[contender.key]["rounds"].append({"round": number})
            # ABBA: every other round runs the modes and the servers in reverse order, so a machine that
            # drifts during the run (seen here: both servers' CPU per request rising by a third) is charged
            # to both sides alike
            flip = number % 2 == 0
            for mode, keep_alive in (MODES[::-1] if flip else MODES):
                for contender in (contenders[::-1] if flip else contenders):
                    contender.target.keep_alive = keep_alive
                    this_round = results[contender.key]["rounds"][-1]
                    this_round[mode] = {}
                    for phase, connections, seconds in (("single_client", 1, plan.single_s),
                                                        ("throughput", plan.connections, plan.throughput_s)):
                        time.sleep(1)
                        label = (f"round {number}/{plan.rounds}, {MODE_LABELS[mode]}, {phase.replace('_', ' ')} "
                                 f"{seconds:.0f}s at {connections} connection{'s' if connections > 1 else ''}")
                        log(f"{contender.label}: {label}")
                        this_round[mode][phase] = measure_phase(contender, contenders, label=label,
                                                                connections=connections, seconds=seconds, plan=plan)
        for contender in contenders:
            if not contender.server.alive:
                raise BenchmarkError(f"{contender.label} died under load; log: {contender.server.log_path}")
            results[contender.key]["rss_mib"] = contender.server.rss_mib()
            results[contender.key]["processes"] = len(contender.server.pids())
    finally:
        for contender in contenders:
            contender.server.stop()
    for contender in contenders:
        rounds = results[contender.key]["rounds"]
        for mode, _ in MODES:
            results[contender.key][mode] = {phase: pooled([r[mode][phase] for r in rounds]) for phase in PHASES}
    return results


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase over all rounds: rates from summed counts and durations, latency percentiles as the median
    of the rounds' percentiles, `spread` = (max - min) / mean of the rounds' rates."""
    duration = sum(r["duration_s"] for r in runs)
    good = sum(r["good"] for r in runs)
    rates = [r["rps"] for r in runs]
    mean_rate = sum(rates) / len(rates)
    cpu = sum(r["server_cpu_s"] for r in runs)
    return {
        "rps": good / duration if duration else float("nan"),
        "good": good, "requests": sum(r["requests"] for r in runs), "errors": sum(r["errors"] for r in runs),
        "duration_s": duration,
        "latency_ms": {k: statistics.median(r["latency_ms"][k] for r in runs) for k in runs[0]["latency_ms"]},
        "rps_per_round": rates, "spread": (max(rates) - min(rates)) / mean_rate if mean_rate else float("nan"),
        "server_cpu_ms_per_request": cpu * 1000 / good if good else None,
        "server_system_cpu_share": sum(r["server_system_cpu_s"] for r in runs) / cpu if cpu else None,
        "generator_cpu_share_of_one_core": sum(r["generator_cpu_s"] for r in runs) / duration if duration else None,
        "other_cores": max(r["other_cores"] for r in runs), "steal_cores": max(r["steal_cores"] for r in runs),
        "attempts": sum(r["attempts"] for r in runs), "rounds": len(runs),
        "disturbed_rounds": sum(bool(r["disturbed"]) for r in runs),
    }


# --- the benchmark ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    import joblib
    import pandas as pd
    import skops.io as sio

    plan = plan_from(args)
    if plan.loadgen == "wrk" and not loadgen.wrk_available():
        raise BenchmarkError("wrk is not installed: `apt-get install -y wrk`, or pass --loadgen python")
    frame = load_telco()  # fails first, with a clear message, when the shared data is absent
    fresh_dir(WORK)
    data = frame.drop(columns=["customerID"])
    with stopwatch() as fitting:
        pipeline = fit_pipeline(data)
    log(f"fitted the Telco pipeline on {len(data):,} rows in {fitting['seconds']:.1f}s")
    ids, rows = request_rows(frame, REQUEST_ROWS)
    expected = [str(v) for v in pipeline.predict(pd.DataFrame(rows).astype({"TotalCharges": float}))]
    skops_path, reference_path = WORK / "telco_churn.skops", WORK / "ref.csv"
    pipeline_path, features_path = WORK / "pipeline.joblib", WORK / "features.csv"
    skops_path.write_bytes(sio.dumps(pipeline))
    data.to_csv(reference_path, index=False)
    data.drop(columns=["Churn"]).to_csv(features_path, index=False)
    joblib.dump(pipeline, pipeline_path)

    with stopwatch() as mlflow_setup:
        mlflow_versions = ensure_mlflow_venv()
        model_dir = save_mlflow_model(pipeline_path, features_path)
    log(f"MLflow {mlflow_versions['mlflow']} model saved ({mlflow_setup['seconds']:.0f}s)")
    with stopwatch() as portal_setup:
        portal = setup_portal(skops_path, reference_path)
    log(f"OpsPortal set up: churn v{portal['version']} {portal['stage']}, engine {portal['engine']} "
        f"({portal_setup['seconds']:.0f}s)")

    full = None
    if not args.no_full_stack:
        with stopwatch() as full_setup:
            full = setup_full_stack(args, skops_path, reference_path)
        log(f"full-stack portal set up on PostgreSQL + Redis ({full_setup['seconds']:.0f}s)")
    generator_cpus, server_cpus = cpu_split(plan)
    portal_port, quiet_port, mlflow_port = free_port(), free_port(), free_port()
    bodies = [json.dumps({"rows": [row], "ids": [cid]}).encode() for cid, row in zip(ids, rows, strict=True)]
    contenders = [
        portal_contender("opsportal", "OpsPortal (gunicorn)", portal_port, portal["token"], bodies, log_rate="1",
                         cpus=server_cpus),
        Contender("mlflow", "MLflow (mlflow models serve)", Server("MLflow (mlflow models serve)", [
            str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
            "-p", str(mlflow_port), "-h", LOOPBACK, "--workers", str(WORKERS)], env=_mlflow_env(),
            log_path=WORK / "logs" / "mlflow-serve.log", port=mlflow_port, cpus=server_cpus),
            loadgen.Target(name="mlflow", port=mlflow_port, path="/invocations",
                           bodies=[json.dumps({"dataframe_records": [row]}).encode() for row in rows]),
            "/ping", first_label),
        # The same portal with the prediction log switched off: what logging costs.
        portal_contender("opsportal_nolog", "OpsPortal, log off", quiet_port, portal["token"], bodies, log_rate="0",
                         cpus=server_cpus),
    ]
    if full is not None:
        for key, label, rate in (("full", "OpsPortal, PostgreSQL + Redis", "1"),
                                 ("full_nolog", "OpsPortal, PostgreSQL + Redis, log off", "0")):
            contenders.append(portal_contender(key, label, free_port(), full["token"], bodies, log_rate=rate,
                                               cpus=server_cpus, env=full["env"]))
    log_rows_before = prediction_log_rows()
    own_cpus = os.sched_getaffinity(0)
    if generator_cpus:  # wrk (or the Python generator's threads) inherit this process's CPUs
        os.sched_setaffinity(0, generator_cpus)
    try:
        results = measure_all(contenders, expected, plan)
    finally:
        os.sched_setaffinity(0, own_cpus)
    log_rows_after = prediction_log_rows()  # the web processes are gone; their last log batch was written at exit
    results["opsportal"]["prediction_log_rows_written"] = (
        log_rows_after - log_rows_before if log_rows_before is not None and log_rows_after is not None else None)
    return report(plan, results["opsportal"], results["mlflow"], results["opsportal_nolog"], portal, mlflow_versions,
                  full=(results["full"], results["full_nolog"]) if full is not None else None,
                  cpus={"load_generator": sorted(generator_cpus or []), "each_server": sorted(server_cpus or [])},
                  setup_seconds={
        "fit": fitting["seconds"], "mlflow_env_and_model": mlflow_setup["seconds"],
        "portal_migrate_register_validate_promote": portal_setup["seconds"]})


def portal_contender(key: str, label: str, port: int, token: str, bodies: list[bytes], *,
                     log_rate: str, cpus: set[int] | None, env: dict[str, str] | None = None) -> Contender:
    # as `manage.py up` (bin/run) serves it: gunicorn's threaded workers, which keep connections alive
    return Contender(key, label, Server(label, [
        str(PORTAL_PYTHON), "-m", "gunicorn", "opsportal.wsgi:application", "--bind", f"{LOOPBACK}:{port}",
        "--workers", str(WORKERS), "--threads", str(PORTAL_THREADS)],
        env={**(env or portal_env()), "PREDICTION_LOG_SAMPLE_RATE": log_rate},
        log_path=WORK / "logs" / f"{key}-gunicorn.log", port=port, cpus=cpus),
        loadgen.Target(name=key, port=port, path="/api/v1/models/churn/predict",
                       headers={"Authorization": f"Bearer {token}"}, bodies=bodies),
        "/healthz", first_label)


def report(plan: Plan, ops: dict[str, Any], mlf: dict[str, Any], quiet: dict[str, Any], portal: dict[str, Any],
           mlflow_versions: dict[str, str], cpus: dict[str, list[int]], setup_seconds: dict[str, float],
           full: tuple[dict[str, Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    def ratio_of(mode: str) -> float:
        theirs = mlf[mode]["throughput"]["rps"]
        return ops[mode]["throughput"]["rps"] / theirs if theirs else float("nan")

    def cost_ratio(mode: str) -> float:
        mine, theirs = (m[mode]["throughput"]["server_cpu_ms_per_request"] for m in (ops, mlf))
        return theirs / mine if mine and theirs else float("nan")

    def row(name: str, m: dict[str, Any]) -> list[Any]:
        single, loaded = m["single_client"], m["throughput"]
        return [name, loaded["rps"], f"{loaded['spread']:.0%}", loaded["latency_ms"]["p50"],
                loaded["latency_ms"]["p99"], single["latency_ms"]["p50"], single["latency_ms"]["p95"],
                single["latency_ms"]["p99"], single["rps"], loaded["errors"] + single["errors"],
                loaded["server_cpu_ms_per_request"]]

    c = plan.connections
    headline = MODES[0][0]
    columns = ["server", f"req/s @{c}", "spread", f"p50 ms @{c}", f"p99 ms @{c}", "p50 ms @1", "p95 ms @1",
               "p99 ms @1", "req/s @1", "errors", "CPU ms/req"]
    where = (f"each server on CPU {','.join(map(str, cpus['each_server']))}, {plan.loadgen} on CPU "
             f"{','.join(map(str, cpus['load_generator']))}" if cpus["each_server"] else f"{plan.loadgen}, shared CPUs")
    tables = [Table(f"Real-time scoring, 1 row per request, {MODE_LABELS[mode]} ({WORKERS} worker processes each, "
                    f"{where}, {plan.rounds} interleaved round{'s' if plan.rounds > 1 else ''})", columns,
                    [row("OpsPortal", ops[mode]), row("MLflow", mlf[mode]), row("OpsPortal, log off", quiet[mode]),
                     *([row("OpsPortal, PostgreSQL+Redis", full[0][mode]),
                        row("  the same, log off", full[1][mode])] if full else [])])
              for mode, _ in MODES]
    measured = (ops, mlf, quiet, *(full or ()))
    everything = [m[mode][phase] for m in measured for mode, _ in MODES for phase in PHASES]
    noise = max(x["other_cores"] for x in everything)
    steal = max(x["steal_cores"] for x in everything)
    generator = max(x["generator_cpu_share_of_one_core"] or 0.0 for x in everything)
    retried = sum(x["attempts"] - x["rounds"] for x in everything)
    notes = [
        f"@{c}: {c} concurrent connections, {plan.throughput_s:.0f}s per round; @1: one client, sequential "
        f"requests, {plan.single_s:.0f}s per round; {plan.rounds} round(s) alternating the servers, after a "
        f"{plan.warmup_s:.0f}s warm-up each. Rates pool all rounds; latency percentiles are the median of the rounds'.",
        f"spread: (max - min) / mean of req/s @{c} over the rounds. errors: non-200, 200 without a prediction, "
        "socket errors (both phases). Throughput counts good responses only.",
        "CPU ms/req: user+system CPU of all the server's processes during the throughput phases / good responses; "
        f"system (kernel) share: OpsPortal {ops[headline]['throughput']['server_system_cpu_share']:.0%}, "
        f"MLflow {mlf[headline]['throughput']['server_system_cpu_share']:.0%} ({MODE_LABELS[headline]}).",
        f"Keeps connections alive: OpsPortal {fmt_bool(ops['server_keeps_connections_alive'])} (gunicorn, "
        f"{WORKERS} workers x {PORTAL_THREADS} threads as `manage.py up` runs it), MLflow "
        f"{fmt_bool(mlf['server_keeps_connections_alive'])} (uvicorn).",
        ("CPUs: the load generator runs on its own CPU and each server on the others, the same for both, so "
         "the generator never takes CPU from the server it measures (sharing, it takes more from the faster "
         "one); --no-pin shares every CPU." if cpus["each_server"] else "CPUs: all shared (--no-pin)."),
        f"OpsPortal engine {portal['engine']}, prediction log rows written {ops.get('prediction_log_rows_written')}; "
        f"MLflow {mlflow_versions['mlflow']}. RSS: OpsPortal {ops['rss_mib']:.0f} MiB, "
        f"MLflow {mlf['rss_mib']:.0f} MiB.",
        f"Machine: load generator at most {generator:.0%} of one core; other processes up to {noise:.2f} cores; "
        f"hypervisor steal up to {steal:.2f} cores.",
    ]
    if retried:
        notes.append(f"{retried} phase(s) measured again because the machine was busy; the quieter attempt is used "
                     "(every attempt is in the JSON).")
    disturbed = sum(x["disturbed_rounds"] for x in everything)
    if disturbed:
        notes.append(f"WARNING: {disturbed} phase(s) ran while other processes took CPU from a saturated machine; "
                     "those numbers are disturbed. Run again on a quiet machine before quoting them.")
    tables[-1].notes = notes
    targets_rows, targets = [], []
    for mode, _ in MODES:
        ratio, median = ratio_of(mode), ops[mode]["single_client"]["latency_ms"]["p50"]
        targets_rows += [
            [f"throughput OpsPortal / MLflow ({MODE_LABELS[mode]})", f"{ratio:.2f}x", f">= {TARGET_RATIO:.0f}x",
             "PASS" if ratio >= TARGET_RATIO else "FAIL"],
            [f"OpsPortal median latency, 1 client ({MODE_LABELS[mode]})", f"{median:.2f} ms",
             f"< {TARGET_MEDIAN_MS:.0f} ms", "PASS" if median < TARGET_MEDIAN_MS else "FAIL"]]
        targets += [{"figure": "throughput_ratio", "mode": mode, "measured": ratio, "target": f">= {TARGET_RATIO}",
                     "passed": ratio >= TARGET_RATIO},
                    {"figure": "opsportal_median_ms", "mode": mode, "measured": median,
                     "target": f"< {TARGET_MEDIAN_MS}", "passed": median < TARGET_MEDIAN_MS}]
    targets_rows.append([f"CPU per request, MLflow / OpsPortal ({MODE_LABELS[headline]})",
                         f"{cost_ratio(headline):.2f}x", "(info)", "-"])
    log_cost = log_cost_of(ops, quiet, headline)
    full_log_cost = log_cost_of(full[0], full[1], headline) if full else None
    for store, cost in (("embedded SQLite", log_cost), ("PostgreSQL COPY", full_log_cost)):
        if cost is None:
            continue
        passed = cost["throughput"] < TARGET_LOG_COST
        targets_rows += [
            [f"prediction logging on {store}: throughput lost ({MODE_LABELS[headline]})",
             f"{cost['throughput']:.1%}", f"< {TARGET_LOG_COST:.0%}", "PASS" if passed else "FAIL"],
            [f"prediction logging on {store}: extra CPU per request", f"{cost['cpu']:.1%}", "(info)", "-"]]
        targets.append({"figure": "prediction_log_throughput_cost", "store": store, "mode": headline,
                        "measured": cost["throughput"], "target": f"< {TARGET_LOG_COST}", "passed": passed})
    if full:
        full_ratio = full[0][headline]["throughput"]["rps"] / mlf[headline]["throughput"]["rps"]
        targets_rows.append([f"throughput OpsPortal on PostgreSQL + Redis / MLflow ({MODE_LABELS[headline]})",
                             f"{full_ratio:.2f}x", "(info)", "-"])
    tables.append(Table("Targets (from the issue)", ["figure", "measured", "target", "result"], targets_rows,
                        notes=["The first mode is the headline: both servers do the same TCP work per request. "
                               "On reused connections uvicorn's responses can wait for a delayed ACK (Nagle; see "
                               "benchmarks/README.md), so that mode partly measures a TCP artefact of MLflow's.",
                               "CPU per request ratio: what the throughput ratio would be with both servers "
                               "CPU-bound; it moves less than req/s when other processes share the machine."]))
    return {
        "name": NAME, "title": TITLE,
        "figures": {"mode": headline, "throughput_ratio": ratio_of(headline),
                    "opsportal_median_ms": ops[headline]["single_client"]["latency_ms"]["p50"],
                    "opsportal_rps": ops[headline]["throughput"]["rps"],
                    "mlflow_rps": mlf[headline]["throughput"]["rps"],
                    "mlflow_median_ms": mlf[headline]["single_client"]["latency_ms"]["p50"],
                    "keepalive_throughput_ratio": ratio_of("keepalive"),
                    "cpu_per_request_ratio": cost_ratio(headline),
                    "prediction_log_throughput_cost": log_cost["throughput"],
                    "prediction_log_cpu_cost": log_cost["cpu"],
                    "full_stack_rps": full[0][headline]["throughput"]["rps"] if full else None,
                    "full_stack_prediction_log_throughput_cost": (
                        full_log_cost["throughput"] if full_log_cost else None)},
        "targets": targets,
        "tables": tables,
        "servers": {"opsportal": ops, "mlflow": mlf, "opsportal_nolog": quiet,
                    **({"full_stack": full[0], "full_stack_nolog": full[1]} if full else {})},
        "config": {"connections": c, "warmup_s": plan.warmup_s, "single_s": plan.single_s,
                   "throughput_s": plan.throughput_s, "rounds": plan.rounds, "loadgen": plan.loadgen,
                   "workers_each": WORKERS, "request_rows": REQUEST_ROWS, "modes": dict(MODE_LABELS),
                   "cpus": cpus,
                   "opsportal": {"command": f"gunicorn opsportal.wsgi:application --workers {WORKERS} "
                                            f"--threads {PORTAL_THREADS}",
                                 "env": {"DEBUG": "false", "PREDICTION_LOG_SAMPLE_RATE": "1",
                                         "API_THROTTLE_USER": BENCH_THROTTLE_USER, "database": "sqlite (embedded)"},
                                 "model_version": portal["version"], "engine": portal["engine"],
                                 "validation_onnx_timings": portal.get("onnx_timings")},
                   "mlflow": {"command": f"mlflow models serve --env-manager local --workers {WORKERS}",
                              "versions": mlflow_versions}},
        "setup_seconds": {**setup_seconds, "portal_steps": portal["timings_s"]},
        "machine_noise": {"max_other_cores": noise, "max_steal_cores": steal, "disturbed_phases": disturbed,
                          "quiet": disturbed == 0},
    }


def log_cost_of(ops: dict[str, Any], quiet: dict[str, Any], mode: str) -> dict[str, float]:
    """Share of throughput lost, and extra CPU per request, with every prediction logged vs none."""
    with_log, without = ops[mode]["throughput"], quiet[mode]["throughput"]
    lost = 1 - with_log["rps"] / without["rps"] if without["rps"] else float("nan")
    mine, base = with_log["server_cpu_ms_per_request"], without["server_cpu_ms_per_request"]
    return {"throughput": lost, "cpu": mine / base - 1 if mine and base else float("nan")}


def first_label(payload: dict[str, Any]) -> str:
    """Both servers answer {"predictions": [label, ...], ...}."""
    return str(payload["predictions"][0])


def fmt_bool(value: bool) -> str:
    return "yes" if value else "no"
