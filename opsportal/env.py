"""Environment-driven configuration that fails loudly on bad values.

Every setting OpsPortal reads goes through these helpers, so the set of known
variable names is complete: a `.env` file naming an unknown variable (a typo
such as `DATBASE_URL`) stops start-up instead of being silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from dotenv import dotenv_values

__all__ = ["dotenv_values", "env_bool", "env_choice", "env_float", "env_int", "env_list", "env_str"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

KNOWN: set[str] = set()
_DOTENV: dict[str, str] = {}


def load_dotenv_file(path: Path) -> None:
    """Read `path` (when present) as defaults below the real environment."""
    if path.is_file():
        _DOTENV.update({k: v or "" for k, v in dotenv_values(path).items()})


def _raw(name: str) -> str | None:
    KNOWN.add(name)
    value = os.environ.get(name)
    return _DOTENV.get(name) if value is None else value


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None or value == "":
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of {sorted(TRUE_WORDS | FALSE_WORDS)}"
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float, maximum: float) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if not minimum <= number <= maximum:
        raise ImproperlyConfigured(f"{name}={number} must be between {minimum} and {maximum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None or value.strip() == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {list(choices)}")
    return value


def reject_unknown_dotenv_keys() -> None:
    """Call once every setting has been read."""
    unknown = sorted(set(_DOTENV) - KNOWN)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown variable(s) in .env: {', '.join(unknown)}. "
            "See .env.example for the variables OpsPortal reads."
        )
