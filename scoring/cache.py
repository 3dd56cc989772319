"""The in-process model cache of each web process.

A version is loaded once (hash checked first, from storage into memory) by its
fastest verified engine: the ONNX twin when validation kept one, else the
scikit-learn object through skops with the admin-managed trusted types. The cache
is bounded by the summed artifact size and evicts least recently used versions.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from django.conf import settings

from registry import artifacts, selectors
from registry.models import Engine, ModelVersion
from registry.sandbox import OnnxPredictor, SklearnPredictor

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded: OrderedDict[tuple[int, str], tuple[Any, int]] = OrderedDict()


def _load(version: ModelVersion) -> tuple[Any, int]:
    columns = version.input_columns
    classes = version.signature.get("output", {}).get("classes")
    with tempfile.TemporaryDirectory(prefix="opsportal-load-") as tmp:
        if version.engine == Engine.ONNX:
            key, sha = (version.onnx_key, version.onnx_sha256) if version.onnx_key else (
                version.artifact_key, version.artifact_sha256)
            with artifacts.blob_local_copy(key, sha, Path(tmp)) as path:
                predictor = OnnxPredictor(str(path), columns=columns, classes=classes)
                return predictor, path.stat().st_size
        import skops.io as sio

        with artifacts.blob_local_copy(version.artifact_key, version.artifact_sha256, Path(tmp)) as path:
            model = sio.load(path, trusted=selectors.trusted_type_names())
            return SklearnPredictor(model), path.stat().st_size


def predictor_for(version: ModelVersion) -> Any:
    """The loaded predictor for a ready version (raises ArtifactTampered when the bytes changed)."""
    key = (version.pk, version.artifact_sha256)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key][0]
    predictor, size = _load(version)
    with _lock:
        _loaded[key] = (predictor, size)
        budget = settings.SCORING_CACHE_MAX_MB * 1024 * 1024
        while len(_loaded) > 1 and sum(s for _, s in _loaded.values()) > budget:
            _loaded.popitem(last=False)
    return predictor


def clear() -> None:
    with _lock:
        _loaded.clear()
    _versions.clear()
    _configs.clear()


def cached_versions() -> list[int]:
    with _lock:
        return [pk for pk, _ in _loaded]


# --- warming: a promoted champion is loaded before its first request -----------------------------

WARM_EVERY_SECONDS = 5.0
_warmer: threading.Thread | None = None


def warm_champions() -> list[int]:
    """Load every champion and challenger not yet in this process's cache; returns the version ids loaded."""
    from registry.models import ModelAlias, VersionStatus

    loaded = []
    aliases = ModelAlias.objects.select_related("version").filter(version__status=VersionStatus.READY)
    for alias in aliases.order_by("name"):  # champions first
        key = (alias.version.pk, alias.version.artifact_sha256)
        with _lock:
            known = key in _loaded
        if not known:
            try:
                predictor_for(alias.version)
                loaded.append(alias.version.pk)
            except Exception:  # a broken artifact is reported on the request that needs it
                logger.exception("Could not warm version %s", alias.version.pk)
    return loaded


def _warm_forever() -> None:
    from django.db import connection

    while True:
        time.sleep(WARM_EVERY_SECONDS)
        try:
            warm_champions()
        except Exception:  # the database may be restarting: try again next round
            logger.warning("Model cache warming skipped this round", exc_info=True)
        finally:  # a session per round, none held between rounds (nor when the database is dropped)
            connection.close()


def ensure_warmer() -> None:
    """Start this process's warming thread (once, on its first prediction)."""
    global _warmer
    if _warmer is not None and _warmer.is_alive():
        return
    with _lock:
        if _warmer is None or not _warmer.is_alive():
            _warmer = threading.Thread(target=_warm_forever, name="model-cache-warmer", daemon=True)
            _warmer.start()


# --- small lookups on the hot path -----------------------------------------------------------------

CONFIG_TTL_SECONDS = 2.0
_versions: dict[int, ModelVersion] = {}
_configs: dict[int, tuple[float, Any]] = {}


def ready_version(pk: int) -> ModelVersion | None:
    """A ready version by id, kept in memory: a ready version never changes what it scores with."""
    from registry.models import VersionStatus

    found = _versions.get(pk)
    if found is None:
        found = ModelVersion.objects.filter(pk=pk, status=VersionStatus.READY).first()
        if found is not None:
            _versions[pk] = found
    return found


def scoring_config(model_id: int) -> Any:
    """The model's traffic config, re-read at most every CONFIG_TTL_SECONDS (changes apply within seconds)."""
    from scoring.models import ScoringConfig

    now = time.monotonic()
    cached = _configs.get(model_id)
    if cached is None or now - cached[0] > CONFIG_TTL_SECONDS:
        cached = (now, ScoringConfig.objects.filter(model_id=model_id).first())
        _configs[model_id] = cached
    return cached[1]
