"""Python client and command line for the OpsPortal model registry."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from opsportal_client.client import (
    BINARY,
    FORMATS,
    MULTICLASS,
    REGRESSION,
    TASKS,
    Client,
    OpsPortalConnectionError,
    OpsPortalError,
    OpsPortalException,
    ValidationFailed,
    format_for_path,
    infer_task,
)

try:
    __version__ = version("opsportal-client")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "BINARY",
    "FORMATS",
    "MULTICLASS",
    "REGRESSION",
    "TASKS",
    "Client",
    "OpsPortalConnectionError",
    "OpsPortalError",
    "OpsPortalException",
    "ValidationFailed",
    "__version__",
    "format_for_path",
    "infer_task",
]
