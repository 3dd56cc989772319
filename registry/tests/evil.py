"""A class whose restoration has a side effect: proof that refused files are never loaded."""

from __future__ import annotations

import os
from typing import Any

MARKER_ENV = "OPSPORTAL_TEST_MARKER"


class Evil:
    def __setstate__(self, state: dict[str, Any]) -> None:
        with open(state.get("marker") or os.environ[MARKER_ENV], "w") as fh:
            fh.write("code ran")


class ExecOnLoad:
    """Unpickling this runs `code` (what a hostile pickle does)."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))
