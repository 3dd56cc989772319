"""Artifact bytes: what a file really is (decided from its bytes, never its name),
bounds checked before anything is extracted or loaded, and content-addressed storage.

Nothing here unpickles or imports model code: zip headers, a JSON schema, protobuf
and Parquet metadata are read as data only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from opsportal.errors import DomainError

CHUNK = 1024 * 1024
PICKLE_HELP = (
    "Pickle and joblib files can run arbitrary code when loaded, so OpsPortal does not accept them. "
    "Convert the model with skops: `import skops.io as sio; sio.dump(model, 'model.skops')`, "
    "then upload model.skops (or ask an admin to allow pickle files)."
)
MSG_UNSUPPORTED = (
    "The file is not a model OpsPortal can load: it is neither skops, ONNX nor pickle (decided from its bytes)."
)
MSG_CORRUPT = "The model file is truncated or corrupt: {reason}"


class ArtifactRejected(DomainError):
    """Bad upload, refused before anything is stored or loaded."""


class ArtifactTampered(Exception):
    """Stored bytes no longer match the hash recorded at registration."""


@dataclass(frozen=True)
class Blob:
    key: str
    sha256: str
    size: int


@dataclass
class DatasetInfo:
    format: str
    columns: list[str] = field(default_factory=list)


# --- what is this file? -----------------------------------------------------------------


def _head(path: Path, n: int = 8) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


COMPRESSED_MAGIC = (
    b"\x78\x01",
    b"\x78\x5e",
    b"\x78\x9c",
    b"\x78\xda",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x04\x22\x4d\x18",
)


def _check_zip_bounds(archive: zipfile.ZipFile) -> None:
    """Refuse entry-count and size bombs from the central directory, before any entry is read."""
    entries = archive.infolist()
    if len(entries) > settings.ARTIFACT_MAX_ZIP_ENTRIES:
        raise ArtifactRejected(
            "zip_bomb",
            f"The archive has {len(entries)} entries; at most {settings.ARTIFACT_MAX_ZIP_ENTRIES} are accepted.",
        )
    total = sum(e.file_size for e in entries)
    if total > settings.ARTIFACT_MAX_UNCOMPRESSED_BYTES:
        raise ArtifactRejected(
            "zip_bomb",
            f"The archive would expand to {total} bytes; at most "
            f"{settings.ARTIFACT_MAX_UNCOMPRESSED_BYTES} are accepted.",
        )
    for entry in entries:
        if entry.compress_size and entry.file_size / entry.compress_size > settings.ARTIFACT_MAX_COMPRESSION_RATIO:
            raise ArtifactRejected(
                "zip_bomb",
                f"Entry {entry.filename!r} is compressed more than "
                f"{settings.ARTIFACT_MAX_COMPRESSION_RATIO}:1, which model files never are.",
            )


def _is_skops(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            _check_zip_bounds(archive)
            if "schema.json" not in archive.namelist():
                return False
            schema = json.loads(archive.read("schema.json"))
            if archive.testzip() is not None:
                raise ArtifactRejected("corrupt_artifact", MSG_CORRUPT.format(reason="an entry fails its CRC check"))
    except (zipfile.BadZipFile, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise ArtifactRejected("corrupt_artifact", MSG_CORRUPT.format(reason=str(exc) or type(exc).__name__)) from None
    return isinstance(schema, dict) and "protocol" in schema and "__loader__" in schema


def _is_onnx(path: Path) -> bool:
    import onnx  # protobuf parsing only; no operator runs here

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # any parse failure means "not ONNX"
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def sniff_format(path: Path) -> str:
    """'skops', 'onnx', 'pickle' (also compressed joblib) or 'unknown'."""
    head = _head(path)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "skops" if _is_skops(path) else "unknown"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(COMPRESSED_MAGIC):
        return "pickle"
    if head[:1] == b"\x08" and _is_onnx(path):
        return "onnx"
    return "unknown"


def check_artifact(path: Path, declared: str, *, allow_pickle: bool) -> str:
    """The format to record, or ArtifactRejected saying why not."""
    if path.stat().st_size == 0:
        raise ArtifactRejected("empty_file", "The model file is empty.")
    detected = sniff_format(path)
    if detected == "pickle" and not allow_pickle:
        raise ArtifactRejected("unsupported_format", PICKLE_HELP, details={"detected": "pickle", "declared": declared})
    if detected == "unknown":
        raise ArtifactRejected("unsupported_format", MSG_UNSUPPORTED, details={"declared": declared})
    if detected != declared:
        raise ArtifactRejected(
            "unsupported_format",
            f"The file is {detected}, not {declared} as declared (decided from its bytes).",
            details={"detected": detected, "declared": declared},
        )
    return detected


# --- datasets (reference, holdout, batch input) -------------------------------------------


def _csv_columns(path: Path) -> list[str]:
    with path.open("rb") as fh:
        sample = fh.read(256 * 1024)
    try:
        text = sample.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ArtifactRejected("bad_dataset", "The data file is neither Parquet nor UTF-8 CSV.") from None
    first_line = text.splitlines()[0] if text else ""
    header = next(csv.reader(io.StringIO(first_line)), [])
    return [name.strip() for name in header]


def check_dataset(path: Path, *, target_column: str = "") -> DatasetInfo:
    """Format and columns of an uploaded CSV or Parquet file, checked before it is stored."""
    if path.stat().st_size == 0:
        raise ArtifactRejected("bad_dataset", "The data file is empty.")
    if _head(path, 4) == b"PAR1":
        import pyarrow.parquet as pq

        try:
            info = DatasetInfo("parquet", list(pq.read_schema(path).names))
        except Exception as exc:  # any metadata failure is a corrupt file
            raise ArtifactRejected("bad_dataset", f"The Parquet file cannot be read: {exc}") from None
    else:
        info = DatasetInfo("csv", _csv_columns(path))
    _check_columns(info.columns, target_column)
    return info


def _check_columns(columns: list[str], target_column: str) -> None:
    if not columns or any(not c for c in columns):
        raise ArtifactRejected("bad_dataset", "The data file needs a header row with a name for every column.")
    if len(columns) > settings.DATASET_MAX_COLUMNS:
        raise ArtifactRejected(
            "bad_dataset",
            f"The data file has {len(columns)} columns; at most {settings.DATASET_MAX_COLUMNS} are accepted.",
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ArtifactRejected("bad_dataset", "Column names must be unique.", details={"duplicates": duplicates})
    if target_column and target_column not in columns:
        raise ArtifactRejected(
            "bad_dataset",
            f"The target column {target_column!r} is not in the data file.",
            details={"columns": columns[:50]},
        )


# --- content-addressed storage ------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def blob_put(path: Path, kind: str) -> Blob:
    """Store under a key derived from the content only (never from a user-supplied name)."""
    sha = sha256_of(path)
    with path.open("rb") as fh:
        return _blob_save(File(fh), kind, sha, path.stat().st_size)


def blob_put_bytes(data: bytes, kind: str) -> Blob:
    """blob_put for bytes already in memory (no temporary file to write and read back)."""
    return _blob_save(ContentFile(data), kind, hashlib.sha256(data).hexdigest(), len(data))


def _blob_save(content: File, kind: str, sha: str, size: int) -> Blob:
    key = f"{kind}/{sha[:2]}/{sha}"
    if default_storage.exists(key):
        if default_storage.size(key) == size:
            return Blob(key=key, sha256=sha, size=size)
        # Torn by a writer killed mid-write before writes were atomic: the same content replaces it.
        default_storage.delete(key)
    key = default_storage.save(key, content)
    return Blob(key=key, sha256=sha, size=size)


@contextmanager
def blob_local_copy(key: str, expected_sha256: str, directory: Path) -> Iterator[Path]:
    """Copy a stored blob to `directory`, failing closed when its bytes changed since registration."""
    target = directory / expected_sha256
    digest = hashlib.sha256()
    with default_storage.open(key, "rb") as source, target.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != expected_sha256:
        target.unlink()
        raise ArtifactTampered(f"stored bytes of {key} hash to {digest.hexdigest()}, expected {expected_sha256}")
    yield target


@contextmanager
def uploaded_to_path(upload: Any) -> Iterator[Path]:
    """A filesystem path for an uploaded file (Django keeps big uploads on disk already)."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(prefix="opsportal-upload-") as tmp:
        upload.seek(0)
        shutil.copyfileobj(upload, tmp)
        tmp.flush()
        yield Path(tmp.name)
