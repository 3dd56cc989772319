"""HTTP client for the OpsPortal REST API: models, versions, streamed uploads and validation polling."""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor
from tqdm import tqdm

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)

FORMATS = ("skops", "onnx", "pickle")
# Pickle is left out on purpose: loading a pickle runs arbitrary code, so sending one
# must be an explicit choice (`format="pickle"` / `--format pickle`), never a guess.
FORMAT_BY_SUFFIX = {".skops": "skops", ".onnx": "onnx"}

CONTENT_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet"}

# Version statuses the server reports while, and after, it checks an upload.
VALIDATING, READY, FAILED = "validating", "ready", "failed"


class OpsPortalException(Exception):
    """Base of everything this package raises on purpose, so callers can catch one type."""


class OpsPortalError(OpsPortalException):
    """The server answered with an HTTP error (its JSON `error` object, when it sent one)."""

    def __init__(self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(status, code, message, details)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status}, {self.code})"


class OpsPortalConnectionError(OpsPortalException):
    """The server could not be reached, or did not answer in time."""


class ValidationFailed(OpsPortalException):
    """The server checked an uploaded version and refused it; `version` is its JSON."""

    def __init__(self, version: Mapping[str, Any]) -> None:
        self.version: dict[str, Any] = dict(version)
        self.reason = str(version.get("status_reason") or "no reason given")
        super().__init__(
            f"{version.get('model', '?')} version {version.get('number', '?')} failed validation: {self.reason}"
        )


def error_from_body(status: int, body: bytes, reason: str = "") -> OpsPortalError:
    """Build the error for an HTTP error answer; tolerate non-JSON bodies from proxies or crashes."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        details = error.get("details")
        return OpsPortalError(
            status,
            str(error.get("code") or f"http_{status}"),
            str(error.get("message") or reason or "request failed"),
            details if isinstance(details, dict) else {},
        )
    # Not the portal's error shape (e.g. an HTML page from a reverse proxy): keep a short excerpt.
    excerpt = body[:200].decode("utf-8", "replace").strip()
    return OpsPortalError(status, f"http_{status}", reason or excerpt or "request failed", {"body": excerpt})


def format_for_path(path: str | Path) -> str:
    """The artifact format implied by the file extension, or ValueError when it cannot be told safely."""
    suffix = Path(path).suffix.lower()
    if suffix in FORMAT_BY_SUFFIX:
        return FORMAT_BY_SUFFIX[suffix]
    if suffix in (".pkl", ".pickle", ".joblib"):
        raise ValueError(f"{Path(path).name}: pickle artifacts run code when loaded; pass the format explicitly")
    raise ValueError(f"cannot tell the format of {Path(path).name} from its extension; pass one of {FORMATS}")


def infer_task(model: Any) -> str:
    """The registry task for a fitted scikit-learn estimator, from its type and its classes."""
    from sklearn.base import is_classifier  # sklearn is optional: only register() needs it

    if not is_classifier(model):
        return REGRESSION
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ValueError("the classifier has no classes_: fit it before registering it, or pass task=")
    if len(classes) < 2:
        raise ValueError(f"a classifier needs at least two classes, this one has {len(classes)}")
    return BINARY if len(classes) == 2 else MULTICLASS


class Client:
    """A session with one OpsPortal server, authenticated with an API token."""

    def __init__(self, url: str, token: str, *, timeout: float = 60, progress: bool = True) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.progress = progress
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        self._session.headers["User-Agent"] = f"opsportal-client/{_version()}"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the token: reprs end up in logs

    @classmethod
    def login(cls, url: str, username: str, password: str, name: str = "opsportal-client", **options: Any) -> Client:
        """Exchange a username and password for a new API token and return a client using it."""
        anonymous = cls(url, "", **options)
        body = anonymous._request(
            "POST", "/auth/token/", json={"username": username, "password": password, "name": name}
        )
        return cls(url, body["token"], **options)

    # Models

    def get_model(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/models/{_segment(name)}/")

    def create_model(self, name: str, task: str, **fields: Any) -> dict[str, Any]:
        """Create a model; fields: title, description, team, tags. 409 `conflict` if the name exists."""
        _check_choice("task", task, TASKS)
        payload = {"name": name, "task": task, **{k: v for k, v in fields.items() if v is not None}}
        return self._request("POST", "/models/", json=payload)

    def ensure_model(self, name: str, task: str, **fields: Any) -> dict[str, Any]:
        """Return the model, creating it first when it does not exist yet."""
        try:
            return self.get_model(name)
        except OpsPortalError as exc:
            if exc.status != 404:
                raise
        try:
            return self.create_model(name, task, **fields)
        except OpsPortalError as exc:
            # Someone created it between our GET and POST: theirs is the one to use.
            if exc.status == 409:
                return self.get_model(name)
            raise

    # Versions

    def get_version(self, name: str, number: int) -> dict[str, Any]:
        return self._request("GET", f"/models/{_segment(name)}/versions/{int(number)}/")

    def upload_version(
        self,
        name: str,
        artifact_path: str | Path,
        *,
        format: str = "skops",  # shadows the builtin on purpose: it is the server's field name
        reference_path: str | Path | None = None,
        target_column: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        description: str | None = None,
        intended_use: str | None = None,
        source_code_ref: str | None = None,
        training_data_description: str | None = None,
    ) -> dict[str, Any]:
        """Upload an artifact as a new version; the body is streamed, never held in memory whole."""
        _check_choice("format", format, FORMATS)
        fields = _text_fields(
            format=format,
            target_column=target_column,
            metrics=_json_field("metrics", metrics),
            params=_json_field("params", params),
            description=description,
            intended_use=intended_use,
            source_code_ref=source_code_ref,
            training_data_description=training_data_description,
        )
        artifact = Path(artifact_path)
        with ExitStack() as files:
            parts: list[tuple[str, Any]] = [*fields, _file_part(files, "artifact", artifact)]
            if reference_path is not None:
                parts.append(_file_part(files, "reference_data", Path(reference_path)))
            return self._post_multipart(f"/models/{_segment(name)}/versions/", parts, label=artifact.name)

    def wait_for_validation(self, name: str, number: int, *, timeout: float = 600, poll: float = 1.0) -> dict[str, Any]:
        """Poll a version until the server has checked it; ValidationFailed if it refused it."""
        deadline = time.monotonic() + timeout
        while True:
            version = self.get_version(name, number)
            status = version.get("status")
            if status == FAILED:
                raise ValidationFailed(version)
            if status != VALIDATING:
                return version
            if time.monotonic() + poll > deadline:
                raise TimeoutError(f"{name} version {number} is still validating after {timeout:g} s")
            time.sleep(poll)

    def register(
        self,
        model: Any,
        *,
        name: str,
        task: str | None = None,
        reference: Any = None,
        target_column: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        description: str | None = None,
        wait: bool = True,
        timeout: float = 600,
    ) -> dict[str, Any]:
        """Register an in-memory scikit-learn model (as skops) with an optional reference DataFrame."""
        task = task or infer_task(model)
        _check_choice("task", task, TASKS)
        if reference is not None:
            _check_reference(reference, target_column)
        # A private directory that is removed whatever happens, so no model or data copy is left behind.
        with tempfile.TemporaryDirectory(prefix="opsportal-") as tmp:
            artifact = _dump_skops(model, Path(tmp) / f"{_file_stem(name)}.skops")
            reference_path = None if reference is None else _write_parquet(reference, Path(tmp) / "reference.parquet")
            # Only once both files exist: a model that cannot be serialized leaves no empty entry behind.
            self.ensure_model(name, task)
            version = self.upload_version(
                name,
                artifact,
                format="skops",
                reference_path=reference_path,
                target_column=target_column,
                metrics=metrics,
                params=params,
                description=description,
            )
        if not wait:
            return version
        return self.wait_for_validation(name, version["number"], timeout=timeout)

    # Transport

    def _post_multipart(self, path: str, parts: list[tuple[str, Any]], *, label: str) -> dict[str, Any]:
        encoder = MultipartEncoder(fields=parts)
        with self._progress_bar(encoder.len, label) as bar:
            # The monitor reads the encoder lazily, so requests streams it with a Content-Length.
            monitor = MultipartEncoderMonitor(encoder, lambda m: bar.update(m.bytes_read - bar.n))
            return self._request("POST", path, data=monitor, headers={"Content-Type": monitor.content_type})

    def _progress_bar(self, total: int, label: str) -> tqdm:
        # stderr, so scripts can still read the command's results from stdout.
        return tqdm(
            total=total,
            desc=f"Uploading {label}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=not self.progress,
            leave=False,
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.url}{API_PREFIX}{path}"
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise OpsPortalConnectionError(
                f"OpsPortal at {self.url} did not answer within {self.timeout:g} s ({exc.__class__.__name__})"
            ) from exc
        except requests.ConnectionError as exc:
            raise OpsPortalConnectionError(
                f"cannot reach OpsPortal at {self.url}: is the server running, and is the URL "
                f"(--url / OPSPORTAL_URL) right? ({exc.__class__.__name__})"
            ) from exc
        if not response.ok:
            raise error_from_body(response.status_code, response.content, response.reason or "")
        return _json_object(response)


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise OpsPortalError(response.status_code, "invalid_response", "the server did not answer with JSON") from exc
    if not isinstance(body, dict):
        raise OpsPortalError(response.status_code, "invalid_response", "the server answered with an unexpected shape")
    return body


def _text_fields(**values: str | None) -> Iterator[tuple[str, str]]:
    # Unset options are left out rather than sent empty, so the server applies its own defaults.
    return ((key, value) for key, value in values.items() if value is not None)


def _file_part(files: ExitStack, field: str, path: Path) -> tuple[str, tuple[str, IO[bytes], str]]:
    # Opened handles, not bytes: the encoder reads them chunk by chunk while requests sends.
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return field, (path.name, files.enter_context(path.open("rb")), content_type)


def _json_field(label: str, value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{label} must be a mapping, not {type(value).__name__}")
    return json.dumps(dict(value), allow_nan=False)


def _check_choice(label: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{label} must be one of {', '.join(choices)}; got {value!r}")


def _segment(value: str) -> str:
    return quote(value, safe="")


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"


def _dump_skops(model: Any, path: Path) -> Path:
    skops_io = _optional("skops.io")
    skops_io.dump(model, path)
    return path


def _check_reference(frame: Any, target_column: str | None) -> None:
    # Checked before anything is serialized or sent: the server would refuse it only after the whole upload.
    pandas = _optional("pandas")
    if not isinstance(frame, pandas.DataFrame):
        raise TypeError(f"reference must be a pandas DataFrame, not {type(frame).__name__}")
    if target_column is not None and target_column not in frame.columns:
        raise ValueError(f"target_column {target_column!r} is not a column of the reference data")


def _write_parquet(frame: Any, path: Path) -> Path:
    _optional("pyarrow")  # for the install hint: pandas alone cannot write Parquet
    frame.to_parquet(path, engine="pyarrow", index=False)
    return path


def _optional(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is missing: pip install 'opsportal-client[sklearn]'") from exc


def _version() -> str:
    from opsportal_client import __version__

    return __version__
