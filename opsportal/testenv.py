"""pytest plugin loaded before Django settings (`-p opsportal.testenv` in pyproject).

Tests get their own var/ folder, so a running portal's worker never consumes
a test's tasks and the test SQLite file never touches the real one.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OPSPORTAL_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("API_THROTTLE_USER", "100000/min")
os.environ.setdefault("API_THROTTLE_ANON", "100000/min")
os.environ.setdefault("API_THROTTLE_AUTH", "100000/min")
