"""Faults with real services: the portal runs as a gunicorn process on a private PostgreSQL cluster and a
private Redis, both started here on free ports (never the machine's shared servers), and they are
stopped and restarted under it.

- Redis stopped: real-time scoring keeps answering; async actions answer 503; once Redis is back the
  same action is accepted and its task is in the queue (nothing was half-done meanwhile).
- PostgreSQL restarted: a few 503s at most, then the same processes answer again by themselves.
- Webhook receiver down: the delivery is kept, retried with backoff and visible; once the receiver is up,
  it is delivered.

Skipped with the reason when redis-server or PostgreSQL 15's binaries are absent.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.faults

SETUP = """
import json, django
django.setup()
from opsportal.tests.world import _governed_versions, _users
from accounts.services import token_create
users = _users()
model, champion, _ = _governed_versions(users)
tokens = {r: token_create(user=u, name="faults", expires_in_days=1)[1] for r, u in users.items()}
print("WORLD=" + json.dumps({"tokens": tokens}))
"""
ROW = {"tenure": 5, "MonthlyCharges": 70.5, "SeniorCitizen": 0, "Contract": "Month-to-month",
       "PaymentMethod": "Electronic check"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def queue_length(self, queue: str) -> int:
        import redis

        return int(redis.Redis(port=self.port).llen(queue))


class PrivatePostgres:
    """A throwaway cluster owned by the `postgres` system user (initdb refuses root)."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / "pg"
        self.dir.mkdir()
        shutil.chown(self.dir, "postgres")
        self.user = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.user, str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                        str(self.dir / "log"), "-w", "-t", "60", *args], check=True, capture_output=True)

    def init(self) -> None:
        subprocess.run([*self.user, str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U",
                        "postgres"], check=True, capture_output=True)
        self._ctl("-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart")

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"


@dataclass
class Portal:
    url: str
    tokens: dict[str, str]
    redis: PrivateRedis
    postgres: PrivatePostgres
    log: Path
    env: dict[str, str]

    def call(self, method: str, path: str, role: str = "owner_ds", **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def predict(self) -> requests.Response:
        return self.call("POST", "/api/v1/models/churn/predict", json={"rows": [ROW]}, role="business_owner")


def _env(tmp: Path, postgres: PrivatePostgres, redis: PrivateRedis) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SCORING_BACKGROUND_THREADS", "DJANGO_SETTINGS_MODULE")}
    return {**env, "DATABASE_URL": postgres.url, "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
            "OPSPORTAL_VAR_DIR": str(tmp / "var"), "PYTHONPATH": str(settings.BASE_DIR),
            "DJANGO_SETTINGS_MODULE": "opsportal.settings"}


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, *args], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    if REDIS is None or not (PG_BIN / "initdb").exists():
        pytest.skip("redis-server or PostgreSQL 15 (/usr/lib/postgresql/15/bin) is not installed here")
    tmp = Path(tempfile.mkdtemp(prefix="opsportal-faults-"))
    os.chmod(tmp, 0o755)  # noqa: S103 (the postgres user must reach its data folder inside)
    redis, postgres = PrivateRedis(), PrivatePostgres(tmp)
    redis.start()
    postgres.init()
    env = _env(tmp, postgres, redis)
    server = None
    try:
        _run(env, "manage.py", "migrate", "--noinput")
        world = json.loads(_run(env, "-c", SETUP).split("WORLD=")[-1])
        port, log = free_port(), tmp / "gunicorn.log"
        with log.open("wb") as out:
            server = subprocess.Popen([sys.executable, "-m", "gunicorn", "opsportal.wsgi:application", "--bind",
                                       f"127.0.0.1:{port}", "--workers", "1", "--threads", "4", "--timeout", "60"],
                                      env=env, cwd=settings.BASE_DIR, stdout=out, stderr=subprocess.STDOUT)
        wait_port(port)
        yield Portal(f"http://127.0.0.1:{port}", world["tokens"], redis, postgres, log, env)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        redis.stop()
        postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def redis_down(portal: Portal) -> Iterator[Portal]:
    portal.redis.stop()
    try:
        yield portal
    finally:
        portal.redis.start()


# --- Redis stopped -----------------------------------------------------------------------------------------


def test_it_keeps_scoring_in_real_time_while_redis_is_down(redis_down):
    answers = [redis_down.predict().status_code for _ in range(20)]
    assert answers == [200] * 20


def test_it_reports_the_broker_down_on_the_health_check(redis_down):
    response = requests.get(redis_down.url + "/healthz", timeout=30)
    assert response.status_code == 503


def _monitoring_runs(portal: Portal) -> int:
    import psycopg

    with psycopg.connect(portal.postgres.url) as conn:
        return conn.execute("SELECT count(*) FROM monitoring_monitoringrun").fetchone()[0]


def _scoring_jobs(portal: Portal) -> int:
    import psycopg

    with psycopg.connect(portal.postgres.url) as conn:
        return conn.execute("SELECT count(*) FROM scoring_scoringjob").fetchone()[0]


BATCH = "tenure,MonthlyCharges,SeniorCitizen,Contract,PaymentMethod\n5,70.5,0,Month-to-month,Electronic check\n"


def test_it_refuses_a_batch_job_while_redis_is_down_and_leaves_nothing_half_done(redis_down):
    before = _scoring_jobs(redis_down)
    response = redis_down.call("POST", "/api/v1/scoring-jobs/", data={"model": "churn"},
                               files={"file": ("in.csv", BATCH)})
    assert response.status_code == 503, response.text[:300]
    assert _scoring_jobs(redis_down) == before


def test_it_keeps_a_monitoring_run_asked_for_while_redis_is_down_and_queues_it_once_back(portal):
    """Monitoring accepts the run durably (202, not 503) and its reconciler re-queues it: nothing is lost."""
    portal.redis.stop()
    try:
        before = _monitoring_runs(portal)
        response = portal.call("POST", "/api/v1/models/churn/monitoring/runs/", json={})
        assert response.status_code in (202, 503), response.text[:300]
        kept = _monitoring_runs(portal) - before
    finally:
        portal.redis.start()
    if response.status_code == 202:
        assert kept == 1
        _run(portal.env, "-c", "import django; django.setup(); from datetime import timedelta; "
             "from django.utils import timezone; from monitoring.services import runs_reconcile; "
             "runs_reconcile(now=timezone.now() + timedelta(days=1))")
        assert portal.redis.queue_length("monitoring") >= 1
    else:
        assert kept == 0


def test_it_queues_the_action_once_redis_is_back(portal):
    before = _monitoring_runs(portal)
    response = portal.call("POST", "/api/v1/models/churn/monitoring/runs/", json={})
    assert response.status_code == 202, response.text[:300]
    assert _monitoring_runs(portal) == before + 1
    assert portal.redis.queue_length("monitoring") >= 1


# --- PostgreSQL restarted ----------------------------------------------------------------------------------


def _keep_asking(portal: Portal, answers: list[tuple[float, int]], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            status = portal.call("GET", "/api/v1/models/churn/").status_code
        except requests.ConnectionError:
            status = 0  # the portal itself stopped answering: never acceptable
        answers.append((time.monotonic(), status))
        time.sleep(0.05)


def test_it_recovers_from_a_postgresql_restart_without_restarting_processes(portal):
    for _ in range(5):  # warm: the first requests of a fresh process import and load lazily
        assert portal.call("GET", "/api/v1/models/churn/").status_code == 200
    answers: list[tuple[float, int]] = []
    stop = threading.Event()
    asker = threading.Thread(target=_keep_asking, args=(portal, answers, stop))
    asker.start()
    time.sleep(0.5)
    restarted = time.monotonic()
    try:
        portal.postgres.restart()
        back = time.monotonic()
        deadline = back + 30
        while time.monotonic() < deadline and not [s for t, s in answers[-5:] if t > back + 1 and s == 200]:
            time.sleep(0.1)
    finally:
        stop.set()
        asker.join(timeout=30)
    statuses = [s for _, s in answers]
    failed = [t for t, s in answers if s != 200]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))  # brief 503s at most: never a 500 or a dead process
    assert statuses[-1] == 200, statuses
    recovery = (max(failed) - restarted) if failed else 0.0
    print(f"PostgreSQL restart: {len(failed)} of {len(statuses)} requests failed, recovered {recovery:.1f}s after")
    assert portal.predict().status_code == 200


# --- webhook receiver down ---------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        _Receiver.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


@pytest.mark.django_db
def test_it_retries_a_webhook_while_its_receiver_is_down_and_delivers_once_it_is_up(admin_user, api_client_for):
    from accounts import notifications
    from accounts.models import WebhookDelivery

    port = free_port()
    hook, _ = notifications.webhook_create(admin=admin_user, name="Down", url=f"http://127.0.0.1:{port}/hook")
    notifications.notify(event="alert.opened", title="Drift on churn", body="PSI 0.3", url="/monitoring/")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    with pytest.raises(notifications.WebhookTransientError) as raised:
        notifications.webhook_deliver(delivery_id=delivery.pk)
    assert raised.value.retry_in > 0  # the worker's task retries after this backoff
    shown = api_client_for(admin_user).get(f"/api/v1/webhooks/{hook.pk}/deliveries/").json()["results"][0]
    assert shown["status"] == "pending" and shown["attempts"] == 1
    assert shown["next_attempt_at"] and "ConnectionError" in shown["last_error"]
    server = HTTPServer(("127.0.0.1", port), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        notifications.webhook_deliver(delivery_id=delivery.pk)
    finally:
        server.shutdown()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 2
    assert len(_Receiver.received) == 1
