"""Scoring: real-time predictions from the in-process cache, with shadow and canary challengers."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from accounts.services import audit_record
from opsportal.errors import DomainError
from registry.artifacts import ArtifactTampered
from registry.models import AliasName, ModelAlias, ModelVersion, RegisteredModel
from scoring import cache, inputs, log
from scoring.models import ChallengerMode, PredictionSource, ScoringConfig

logger = logging.getLogger(__name__)
MSG_NO_CHAMPION = "{name} has no {alias} yet: promote a version, or call /versions/<n>/predict."
MSG_NOT_READY = "Version {number} is {status}; only validated versions score."
MSG_TAMPERED = "The stored model no longer matches its registered hash; it was not loaded."
# Shadow scoring runs here, one thread per process, so it never delays a response.
_shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-scoring")


class ScoringError(DomainError):
    pass


class Unset:
    """Marks an argument not given (None is a meaningful value)."""


UNSET = Unset()


def resolve_version(model: RegisteredModel, *, alias: str | None, number: int | None) -> ModelVersion:
    """The version to score with. The alias is read every time (a promotion shows on the next request);
    the version itself comes from memory once loaded."""
    if number is not None:
        pk = model.versions.filter(number=number).values_list("pk", flat=True).first()
    else:
        pk = (ModelAlias.objects.filter(model_id=model.pk, name=alias or AliasName.CHAMPION)
              .values_list("version_id", flat=True).first())
    return ready_version_for(model, pk, alias=alias, number=number)


def ready_version_for(model: RegisteredModel, pk: int | None, *, alias: str | None,
                      number: int | None) -> ModelVersion:
    """The ready version `pk` that `alias` or `number` pointed at, or the error saying why not."""
    if pk is None and number is not None:
        raise ScoringError("not_found", f"No version {number} of {model.name}.", status=404)
    if pk is None:
        name = alias or AliasName.CHAMPION
        raise ScoringError("no_champion", MSG_NO_CHAMPION.format(name=model.name, alias=name), status=409)
    version = cache.ready_version(pk)
    if version is None:
        status = ModelVersion.objects.filter(pk=pk).values_list("number", "status").first()
        raise ScoringError("not_ready", MSG_NOT_READY.format(number=status[0], status=status[1]), status=409)
    return version


def _plain(values: np.ndarray) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values.tolist()]


def _score(version: ModelVersion, records: list[dict[str, Any]]) -> tuple[list[Any], list[dict[str, float]] | None]:
    try:
        predictor = cache.predictor_for(version)
    except ArtifactTampered:
        raise ScoringError("artifact_tampered", MSG_TAMPERED, status=503) from None
    try:
        raw_labels, probabilities = predictor.score_records(records, version.input_columns)
        labels = _plain(np.asarray(raw_labels))
    except Exception as exc:  # the model's own code refused these rows
        raise ScoringError("model_error", f"The model could not score these rows: {exc}"[:500], status=422) from None
    if probabilities is None:
        return labels, None
    classes = [str(c) for c in predictor.classes]
    return labels, [dict(zip(classes, map(float, row), strict=True)) for row in probabilities]


# --- challengers ---------------------------------------------------------------------------------


def canary_bucket(model_id: int, entity_id: Any) -> int:
    """0 to 99, stable per model and entity: the same customer always gets the same version."""
    digest = hashlib.sha256(f"{model_id}:{entity_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def _challenger(model: RegisteredModel) -> tuple[ScoringConfig | None, ModelVersion | None]:
    config = cache.scoring_config(model.pk)
    if config is None or config.challenger_mode == ChallengerMode.OFF:
        return None, None
    pk = (ModelAlias.objects.filter(model_id=model.pk, name=AliasName.CHALLENGER)
          .values_list("version_id", flat=True).first())
    version = cache.ready_version(pk) if pk is not None else None
    return (config, version) if version is not None else (None, None)


def _canary_rows(config: ScoringConfig, model: RegisteredModel, ids: list[Any] | None) -> list[bool]:
    if config.challenger_mode != ChallengerMode.CANARY or not ids:
        return []
    return [canary_bucket(model.pk, entity) < config.canary_percent for entity in ids]


def _shadow(version_id: int, parsed: inputs.ParsedInput, request_id: str) -> None:
    close_old_connections()
    try:
        version = ModelVersion.objects.get(pk=version_id)
        started = time.perf_counter()
        labels, probabilities = _score(version, parsed.records)
        result = {"request_id": request_id, "predictions": labels, "latency_ms": (time.perf_counter() - started) * 1e3}
        if probabilities is not None:
            result["probabilities"] = probabilities
        log.record(_log_rows(version, parsed, result, PredictionSource.SHADOW))
    except Exception:  # a failing shadow must never touch the champion's traffic
        logger.exception("Shadow scoring failed for version %s", version_id)
    finally:
        close_old_connections()


# --- the request ---------------------------------------------------------------------------------


def predict(*, model: RegisteredModel, body: Any, alias: str | None = None, number: int | None = None,
            explain: bool = False, version_pk: int | Unset | None = UNSET) -> dict[str, Any]:
    """Validate rows against the version's signature and score them.

    Without an alias or version: the champion, except rows whose entity falls in the
    canary share (challenger), and a shadow copy scored off the response path.
    `version_pk`: the id `alias`/`number` points at, when the caller looked it up already.
    """
    started = time.perf_counter()
    if settings.SCORING_BACKGROUND_THREADS:
        cache.ensure_warmer()
    explicit = alias is not None or number is not None
    version = (resolve_version(model, alias=alias, number=number) if isinstance(version_pk, Unset)
               else ready_version_for(model, version_pk, alias=alias, number=number))
    config, challenger = (None, None) if explicit else _challenger(model)
    parsed = inputs.parse(body, version.signature)
    labels, probabilities = _score(version, parsed.records)
    versions = [version.number] * len(labels)
    canary = _canary_rows(config, model, parsed.ids) if challenger else []
    if any(canary):
        _apply_canary(challenger, parsed.records, canary, labels, probabilities, versions)
    request_id = str(uuid.uuid4())
    result: dict[str, Any] = {"request_id": request_id, "model": model.name, "version": version.number,
                              "engine": version.engine, "predictions": labels}
    if probabilities is not None:
        result["probabilities"] = probabilities
    if any(canary):
        result["versions"] = versions
    if parsed.ids is not None:
        result["ids"] = parsed.ids
    if explain:
        from scoring import explain as explainer

        result["explanations"] = explainer.explain(version, parsed.frame, labels)
    result["unseen_categories"] = parsed.unseen_categories
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if log.sampled():
        log.record(_log_rows(version, parsed, result, PredictionSource.REALTIME, versions))
    if challenger is not None and config.challenger_mode == ChallengerMode.SHADOW:
        _shadow_pool.submit(_shadow, challenger.pk, parsed, request_id)
    return result


def _apply_canary(challenger: ModelVersion, records: list[dict[str, Any]], canary: list[bool], labels: list[Any],
                  probabilities: list[dict[str, float]] | None, versions: list[int]) -> None:
    """Re-score the canary rows with the challenger, in place; on any mismatch the champion's answer stands."""
    rows = [i for i, chosen in enumerate(canary) if chosen]
    try:
        their_labels, their_probabilities = _score(challenger, [records[i] for i in rows])
    except (ScoringError, KeyError):
        logger.warning("Canary rows kept on the champion: challenger v%s cannot score them", challenger.number)
        return
    for position, row in enumerate(rows):
        labels[row], versions[row] = their_labels[position], challenger.number
        if probabilities is not None and their_probabilities is not None:
            probabilities[row] = their_probabilities[position]


def _scores(result: dict[str, Any], classes: list[str] | None) -> list[float | None]:
    if "probabilities" not in result:
        return [float(p) if isinstance(p, (int, float)) else None for p in result["predictions"]]
    if classes is not None and len(classes) == 2:
        return [row[classes[1]] for row in result["probabilities"]]
    return [max(row.values()) for row in result["probabilities"]]


def _log_rows(version: ModelVersion, parsed: inputs.ParsedInput, result: dict[str, Any], source: str,
              versions: list[int] | None = None) -> list[log.LogRow]:
    features = parsed.records
    classes = [str(c) for c in version.signature.get("output", {}).get("classes", [])] or None
    ids = parsed.ids or [""] * len(features)
    probabilities = result.get("probabilities") or [None] * len(features)
    by_number = {version.number: version.pk}
    if versions and set(versions) != {version.number}:
        by_number.update(dict(ModelVersion.objects.filter(model_id=version.model_id, number__in=set(versions))
                              .values_list("number", "pk")))
    numbers = versions or [version.number] * len(features)
    now, per_row, request_id = timezone.now(), result["latency_ms"] / len(features), result["request_id"]
    return [
        log.LogRow(now, version.model_id, by_number[number], request_id, str(entity)[:200], source,
                   log.encode(row), log.encode(prediction), log.encode(proba), score, per_row)
        for entity, row, prediction, proba, score, number in zip(
            ids, features, result["predictions"], probabilities, _scores(result, classes), numbers, strict=True)
    ]


# --- configuration ------------------------------------------------------------------------------


def scoring_config_set(*, model: RegisteredModel, user: Any, mode: str, canary_percent: int = 0,
                       ip: str | None = None) -> ScoringConfig:
    with transaction.atomic():
        config, _ = ScoringConfig.objects.select_for_update().get_or_create(model=model)
        before = {"mode": config.challenger_mode, "canary_percent": config.canary_percent}
        config.challenger_mode, config.canary_percent, config.updated_by = mode, canary_percent, user
        config.save()
        audit_record(actor=user, action="scoring.challenger_mode_set", target=model, ip=ip,
                     payload={"before": before, "after": {"mode": mode, "canary_percent": canary_percent}})
    return config
