"""pytest plugin loaded before Django settings (`-p opsportal.testenv` in pyproject).

Each test run gets its own var/ folder (database file, broker, media), so a running
portal's worker never consumes a test's tasks, and two test runs on one machine
never share a database. The folder is removed when the run ends.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_OWN_DIR = "OPSPORTAL_VAR_DIR" not in os.environ
if _OWN_DIR:
    os.environ["OPSPORTAL_VAR_DIR"] = str(Path(__file__).resolve().parent.parent / "var" / "test" / str(os.getpid()))


def _own_var_dir() -> None:
    """Under pytest-xdist each test process gets its own sub-folder of the run's var/ folder. The
    filesystem broker is a folder, so with a shared one the worker that one test process starts
    took another's tasks and looked for their rows in the wrong database."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    if name.startswith("gw"):
        os.environ["OPSPORTAL_VAR_DIR"] = str(Path(os.environ["OPSPORTAL_VAR_DIR"]) / name)


def _own_redis_database() -> None:
    """Under pytest-xdist each test process talks to its own Redis database, so the worker one
    process starts never takes another's tasks (and purging queues stays private)."""
    name, url = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not name.startswith("gw") or not url.startswith("redis://"):
        return
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    os.environ["CELERY_BROKER_URL"] = urlunsplit(parts._replace(path=f"/{base + 1 + int(name[2:])}"))


_own_var_dir()
_own_redis_database()
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("SCORING_BACKGROUND_THREADS", "false")
os.environ.setdefault("API_THROTTLE_USER", "100000/min")
os.environ.setdefault("API_THROTTLE_ANON", "100000/min")
os.environ.setdefault("API_THROTTLE_AUTH", "100000/min")
os.environ.setdefault("API_THROTTLE_PREDICT", "100000/min")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if _OWN_DIR:
        shutil.rmtree(os.environ["OPSPORTAL_VAR_DIR"], ignore_errors=True)
