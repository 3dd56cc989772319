"""The one base for domain errors services raise; the API layer turns them into error bodies."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with an API status, a stable code, a human message and optional details."""

    def __init__(self, code: str, message: str, *, status: int = 400, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.details = code, message, status, details or {}
