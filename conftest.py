"""Shared fixtures: the personas (in one place) and a real Celery worker process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import Team
from accounts.services import token_create
from opsportal.roles import Role
from scoring import cache as scoring_cache

# Real models and data built in code, shared by every app's tests.
pytest_plugins = ["registry.tests.fixtures", "opsportal.tests.browser"]

PASSWORD = "correct-horse-battery-9"
PERSONAS: dict[str, tuple[Role, ...]] = {
    "data_scientist": (Role.DATA_SCIENTIST,),
    "business_owner": (Role.BUSINESS_OWNER,),
    "approver": (Role.APPROVER,),
    "outsider": (),
}


def _transactional(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    return bool(marker and marker.kwargs.get("transaction")) or "transactional_db" in fixtures \
        or "live_server" in fixtures


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A transactional test ends by emptying every table, the rows the migrations seeded too (roles,
    trusted types, the default policy). Under pytest-xdist's work stealing an ordinary test can run
    next in the same process, so the seeded rows are put back at once, not only when the next
    transactional test starts."""
    worker = getattr(item, "funcargs", {}).get("celery_worker_process")
    if worker is not None:  # nothing of this test may still be writing while its tables are emptied
        worker.quiesce()
    if nextitem is None:
        _end_other_sessions(item)
    yield
    contents = getattr(connection, "_test_serialized_contents", None)
    # After the last test the test databases are already gone (session teardown runs inside its teardown).
    if nextitem is None or not contents or not _transactional(item):
        return
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock():
        connection.creation.deserialize_db_from_string(contents)


def _end_other_sessions(item: pytest.Item) -> None:
    """Before the test databases are dropped: the sessions kept by this process's background threads
    (shadow scoring, with a connection max age) would make PostgreSQL refuse to drop them."""
    if connection.vendor != "postgresql" or not connection.settings_dict["NAME"].startswith("test_"):
        return
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["opsportal.tests.hashers.QuickPBKDF2PasswordHasher",
                                             *settings.PASSWORD_HASHERS]):
        yield


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Throttle counters and cached reads never leak from one test into the next. The scoring cache
    keeps ready versions by id, and a rolled-back test hands the same ids out again on SQLite."""
    cache.clear()
    scoring_cache.clear()


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, *roles: Role, staff: bool = False, team: str | None = None) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD, is_staff=staff)
        user.groups.set(Group.objects.filter(name__in=[str(r) for r in roles]))
        if team:
            Team.objects.get_or_create(slug=team, defaults={"name": team.title()})[0].members.add(user)
        return user

    return make


@pytest.fixture
def data_scientist(make_user: Callable[..., User]) -> User:
    return make_user("dana", Role.DATA_SCIENTIST, team="data-science")


@pytest.fixture
def other_data_scientist(make_user: Callable[..., User]) -> User:
    """A data scientist of another team: must never see the first team's models."""
    return make_user("ravi", Role.DATA_SCIENTIST, team="risk")


@pytest.fixture
def business_owner(make_user: Callable[..., User]) -> User:
    return make_user("bo", Role.BUSINESS_OWNER)


@pytest.fixture
def approver(make_user: Callable[..., User]) -> User:
    return make_user("april", Role.APPROVER)


@pytest.fixture
def outsider(make_user: Callable[..., User]) -> User:
    return make_user("otto")


@pytest.fixture
def admin_user(make_user: Callable[..., User]) -> User:
    user = make_user("root", staff=True)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


@pytest.fixture
def persona(request: pytest.FixtureRequest) -> User:
    """Indirect parametrisation: `@pytest.mark.parametrize("persona", [...], indirect=True)`."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def api_client_for() -> Callable[[User | None], APIClient]:
    """An API client authenticated with a real personal token of `user`."""

    def make(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            _, raw = token_create(user=user, name="tests", expires_in_days=1)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


# --- a real Celery worker -----------------------------------------------------------


def _database_url_for_worker() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def _purge_queues() -> None:
    from opsportal.celery import app

    with app.connection_for_write() as conn:
        for name in settings.CELERY_QUEUE_NAMES:
            conn.default_channel.queue_purge(name)


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, already: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Celery worker exited early:\n{log.read_text()[-3000:]}")
        if log.read_text(errors="replace").count(" ready.") > already:
            return
        time.sleep(0.2)
    raise RuntimeError(f"Celery worker not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def start_worker(log: Path, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
    """A separate `celery worker` process on the configured broker and the test database; its node name
    is `proc.node`."""
    node = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    env = {**os.environ, "DATABASE_URL": _database_url_for_worker()}
    already = log.read_text(errors="replace").count(" ready.") if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "opsportal", "worker", "--loglevel", "INFO",
             "--queues", ",".join(settings.CELERY_QUEUE_NAMES), "--concurrency", str(concurrency),
             "--hostname", node, "--without-gossip", "--without-mingle"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR, start_new_session=True,
        )
    _wait_ready(proc, log, already)
    proc.log_path = log  # type: ignore[attr-defined]
    proc.node = node  # type: ignore[attr-defined]
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


class WorkerHandle:
    """The shared worker, which a test may kill (SIGKILL, like an OOM killer) and start again."""

    def __init__(self, log: Path):
        self.log_path = log
        self.proc = start_worker(log)

    def children(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def kill_all(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        stop_worker(self.proc)
        self.proc = start_worker(self.log_path)

    def stop(self) -> None:
        stop_worker(self.proc)

    def idle(self) -> bool:
        """The worker answers and holds no task: none running, prefetched or waiting for its countdown."""
        from opsportal.celery import app

        node = self.proc.node  # type: ignore[attr-defined]
        inspect = app.control.inspect(destination=[node], timeout=1.0)
        return all((call() or {}).get(node) == [] for call in (inspect.active, inspect.reserved, inspect.scheduled))

    def quiesce(self, timeout: float = 120) -> None:
        """Drop queued tasks and wait for the running ones to end: what a test set off (follow-up tasks
        too) must not write into the next test's tables, nor hold locks while they are emptied. Twice idle
        with a purge between: a task that published another just before ending has its message purged."""
        if self.proc.poll() is not None:
            return
        deadline = time.monotonic() + timeout
        calm = 0
        while time.monotonic() < deadline:
            _purge_queues()
            calm = calm + 1 if self.idle() else 0
            if calm == 2:
                return
            time.sleep(0.2)
        warnings.warn(f"Celery worker still busy {timeout}s after its test", stacklevel=1)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[Any]:
    """A real worker shared by the tests that need one."""
    with django_db_blocker.unblock():
        _purge_queues()
    worker = WorkerHandle(tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """A public dataset from ../shared/data, or a skip that says why."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: this acceptance test needs the shared public datasets beside the checkout")
    return path
