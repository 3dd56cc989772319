"""Model validation in a separate, limited process (never the web process).

    python -m registry.sandbox JOB.json

The parent (registry.services.version_validate) starts this with a memory cap,
a CPU limit, a wall-clock timeout and a scrubbed environment (no database
credentials or secrets), then reads RESULT from the path named in the job.
A crafted model that crashes the interpreter only ends this process.

Steps: refuse untrusted skops types → flag a scikit-learn version mismatch →
load → smoke-predict on reference rows (shape, feature count, task) → infer
the signature → time load, single-row and batch prediction → permutation
importance (when the target is present) → compile and verify an ONNX twin.

No Django imports: this must start fast and must not be able to reach the portal.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SMOKE_ROWS = 1000
IMPORTANCE_ROWS = 2000
LATENCY_RUNS = 30
ONNX_TOLERANCE = 1e-5
MAX_CATEGORIES = 200


class Failure(Exception):
    """A readable reason the version cannot be used."""


# --- loading --------------------------------------------------------------------------


def sklearn_versions_in_skops(path: str) -> set[str]:
    """Every `_sklearn_version` recorded in a skops file's schema (read as JSON, not loaded)."""
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            value = node.get("_sklearn_version")
            if isinstance(value, dict) and isinstance(value.get("content"), str):
                found.add(json.loads(value["content"]) if value.get("is_json") else value["content"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def never_trustable(type_name: str) -> bool:
    return type_name.startswith("__main__.") or "." not in type_name


def load_skops(job: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import sklearn
    import skops.io as sio

    path = job["artifact_path"]
    trusted = [t for t in job.get("trusted", []) if not never_trustable(t)]
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(trusted))
    if untrusted:
        return None, {"outcome": "untrusted", "untrusted_types": untrusted}
    trained = sorted(sklearn_versions_in_skops(path))
    if trained and trained != [sklearn.__version__] and not job.get("accept_version_mismatch"):
        return None, {"outcome": "version_mismatch", "trained_sklearn_version": ", ".join(trained)}
    model = sio.load(path, trusted=trusted)
    return model, {"trained_sklearn_version": ", ".join(trained)}


def load_pickle(job: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import joblib
    import sklearn
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        model = joblib.load(job["artifact_path"])
    trained = {
        str(w.message.original_sklearn_version) for w in caught if issubclass(w.category, InconsistentVersionWarning)
    }
    if trained and not job.get("accept_version_mismatch"):
        return None, {"outcome": "version_mismatch", "trained_sklearn_version": ", ".join(sorted(trained))}
    return model, {"trained_sklearn_version": ", ".join(sorted(trained)) or sklearn.__version__}


# --- predictors: one interface over scikit-learn and ONNX Runtime ------------------------------


class SklearnPredictor:
    engine = "sklearn"

    def __init__(self, model: Any):
        self.model = model
        self.classes = [_plain(c) for c in model.classes_] if hasattr(model, "classes_") else None
        names = getattr(model, "feature_names_in_", None)
        self.columns = [str(c) for c in names] if names is not None else None
        self.n_features = getattr(model, "n_features_in_", None)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        if self.classes is None or not hasattr(self.model, "predict_proba"):
            return None
        return np.asarray(self.model.predict_proba(frame), dtype=float)

    def score_records(self, records: list[dict[str, Any]], columns: list[str]) -> tuple[np.ndarray, Any]:
        """Labels and class probabilities (or None) for rows given as dicts."""
        frame = pd.DataFrame.from_records(records, columns=columns)
        return self.predict(frame), self.predict_proba(frame)


ONNX_DTYPES = {
    "tensor(string)": object,
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


class OnnxPredictor:
    engine = "onnx"

    def __init__(self, path: str, columns: list[str] | None = None, classes: list[Any] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        self.per_column = len(self.inputs) > 1 or (self.inputs[0].shape[-1] == 1 and columns and len(columns) == 1)
        self.columns = [i.name for i in self.inputs] if self.per_column else columns
        self.n_features = len(self.inputs) if self.per_column else _int_or_none(self.inputs[0].shape[-1])
        self.classes = classes if classes is not None else _onnx_classes(path)
        # Read once: every NodeArg attribute access crosses into ONNX Runtime's C++ and allocates.
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.column_types = [(i.name, ONNX_DTYPES.get(i.type, np.float32)) for i in self.inputs]

    def feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if self.per_column:
            return {name: _column_array(frame[name], dtype) for name, dtype in self.column_types}
        name, dtype = self.column_types[0]
        return {name: frame.to_numpy(dtype=dtype)}

    def score_records(self, records: list[dict[str, Any]], columns: list[str]) -> tuple[np.ndarray, Any]:
        """Labels and probabilities from one run, fed straight from dicts (no DataFrame on the hot path).

        Missing text is fed as "nan", as pandas' astype(str) does for the rows the twin was checked on.
        """
        if self.per_column:
            feed = {name: _records_array(records, name, dtype) for name, dtype in self.column_types}
        else:
            name, dtype = self.column_types[0]
            feed = {name: np.array([[_number(r[c]) for c in columns] for r in records], dtype=dtype)}
        outputs = self.session.run(self.output_names, feed)
        labels = np.asarray(outputs[0])
        if self.classes is None:
            return labels.reshape(len(records), -1)[:, 0], None
        probabilities = outputs[1] if len(outputs) > 1 else None
        if isinstance(probabilities, list):
            probabilities = [[row[c] for c in self.classes] for row in probabilities]
        return labels.ravel(), None if probabilities is None else np.asarray(probabilities, dtype=float)

    def _run(self, frame: pd.DataFrame) -> list[Any]:
        return self.session.run(None, self.feed(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        labels = np.asarray(self._run(frame)[0])
        return labels.ravel() if self.classes is not None else labels.reshape(len(frame), -1)[:, 0]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        outputs = self._run(frame)
        if self.classes is None or len(outputs) < 2:
            return None
        probabilities = outputs[1]
        if isinstance(probabilities, list):  # ZipMap output: one dict per row
            return np.array([[row[c] for c in self.classes] for row in probabilities], dtype=float)
        return np.asarray(probabilities, dtype=float)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _number(value: Any) -> float:
    return np.nan if value is None else value


def _records_array(records: list[dict[str, Any]], name: str, dtype: Any) -> np.ndarray:
    if dtype is object:
        return np.array([["nan" if r[name] is None else str(r[name])] for r in records], dtype=object)
    return np.array([[_number(r[name])] for r in records], dtype=dtype)


def _column_array(series: pd.Series, dtype: Any) -> np.ndarray:
    if dtype is object:
        return series.astype(str).to_numpy(dtype=object).reshape(-1, 1)
    return series.to_numpy(dtype=dtype).reshape(-1, 1)


def _onnx_classes(path: str) -> list[Any] | None:
    """Class labels from the classifier node's attributes (skl2onnx and most converters set them)."""
    import onnx

    for node in onnx.load_model(path, load_external_data=False).graph.node:
        for attribute in node.attribute:
            if attribute.name == "classlabels_strings":
                return [s.decode() for s in attribute.strings]
            if attribute.name in ("classlabels_int64s", "classlabels_ints"):
                return [int(i) for i in attribute.ints]
    return None


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- data --------------------------------------------------------------------------------------


def read_dataset(path: str, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, low_memory=False)


def split_features(frame: pd.DataFrame, target: str, predictor: Any) -> tuple[pd.DataFrame, pd.Series | None]:
    y = frame[target] if target and target in frame.columns else None
    features = frame.drop(columns=[target]) if y is not None else frame
    wanted = predictor.columns
    if wanted is not None:
        missing = [c for c in wanted if c not in features.columns]
        if missing:
            raise Failure(f"The model expects columns that the reference data lacks: {', '.join(missing[:20])}.")
        features = features[wanted]
    if predictor.n_features is not None and features.shape[1] != predictor.n_features:
        raise Failure(
            f"The model expects {predictor.n_features} input columns but the reference data has "
            f"{features.shape[1]} (besides the target)."
        )
    return features, y


def column_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def infer_signature(features: pd.DataFrame, predictor: Any) -> dict[str, Any]:
    inputs = []
    for name in features.columns:
        series = features[name]
        column: dict[str, Any] = {
            "name": str(name),
            "dtype": column_kind(series),
            "nullable": bool(series.isna().any()),
        }
        if column["dtype"] == "string":
            seen = sorted(series.dropna().astype(str).unique().tolist())
            column["categories"] = seen[:MAX_CATEGORIES]
            column["categories_truncated"] = len(seen) > MAX_CATEGORIES
        elif column["dtype"] in ("integer", "float") and series.notna().any():
            column["min"], column["max"] = float(series.min()), float(series.max())
        inputs.append(column)
    output = {"kind": "classes", "classes": predictor.classes} if predictor.classes is not None else {"kind": "numeric"}
    return {"inputs": inputs, "output": output}


# --- checks ------------------------------------------------------------------------------------


def smoke_test(predictor: Any, sample: pd.DataFrame, task: str) -> dict[str, Any]:
    labels = predictor.predict(sample)
    if len(labels) != len(sample):
        raise Failure(f"The model returned {len(labels)} predictions for {len(sample)} rows.")
    probabilities = predictor.predict_proba(sample)
    check_task(predictor, task)
    if probabilities is not None and probabilities.shape != (len(sample), len(predictor.classes)):
        raise Failure(
            f"Class probabilities have shape {probabilities.shape}, expected ({len(sample)}, {len(predictor.classes)})."
        )
    if probabilities is None and predictor.classes is None and not np.issubdtype(np.asarray(labels).dtype, np.number):
        raise Failure("A regression model must return numbers.")
    return {"rows": len(sample), "probabilities": probabilities is not None}


def check_task(predictor: Any, task: str) -> None:
    classes = predictor.classes
    if task == "regression" and classes is not None:
        raise Failure(f"The model is a classifier ({len(classes)} classes) but the registered model is a regression.")
    if task != "regression" and classes is None:
        raise Failure("The registered model is a classification task, but the model has no classes.")
    if task == "binary_classification" and len(classes) != 2:
        raise Failure(f"A binary classifier needs exactly 2 classes; this one has {len(classes)}: {classes[:10]}.")
    if task == "multiclass_classification" and len(classes) < 3:
        raise Failure(f"A multiclass classifier needs at least 3 classes; this one has {len(classes)}.")


def _median_ms(fn: Any, runs: int = LATENCY_RUNS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(float(np.median(times)), 4)


def timings(predictor: Any, sample: pd.DataFrame) -> dict[str, float]:
    score = predictor.predict_proba if predictor.classes is not None else predictor.predict
    single = sample.iloc[[0]]
    batch_ms = _median_ms(lambda: score(sample), runs=3)
    return {
        "single_row_ms": _median_ms(lambda: score(single)),
        "batch_ms_per_row": round(batch_ms / len(sample), 5),
        "batch_rows": len(sample),
    }


def permutation_importance_of(model: Any, features: pd.DataFrame, y: pd.Series, task: str) -> list[dict[str, Any]]:
    from sklearn.inspection import permutation_importance

    rows = features.index[:IMPORTANCE_ROWS]
    scoring = {"binary_classification": "roc_auc", "multiclass_classification": "accuracy"}.get(task, "r2")
    result = permutation_importance(
        model, features.loc[rows], y.loc[rows], n_repeats=5, random_state=0, scoring=scoring
    )
    ranked = sorted(
        zip(features.columns, result.importances_mean, result.importances_std, strict=True), key=lambda item: -item[1]
    )
    return [
        {"feature": str(name), "importance": round(float(mean), 6), "std": round(float(std), 6), "scoring": scoring}
        for name, mean, std in ranked
    ]


# --- the ONNX twin -----------------------------------------------------------------------------


def compile_onnx_twin(model: Any, sample: pd.DataFrame, predictor: SklearnPredictor, out_path: str) -> dict[str, Any]:
    """Convert with skl2onnx and keep the twin only if it matches scikit-learn on the sample."""
    try:
        onnx_bytes = _convert(model, sample)
    except Exception as exc:  # skl2onnx raises many types for unsupported models
        return {
            "engine": "sklearn",
            "reason": f"No ONNX twin: skl2onnx cannot convert this model ({type(exc).__name__}: {str(exc)[:200]}).",
        }
    Path(out_path).write_bytes(onnx_bytes)
    try:
        twin = OnnxPredictor(out_path, columns=list(sample.columns), classes=predictor.classes)
        diff = _max_difference(predictor, twin, sample)
    except Exception as exc:  # the twin fails to run: keep scikit-learn
        Path(out_path).unlink(missing_ok=True)
        return {
            "engine": "sklearn",
            "reason": f"No ONNX twin: it failed to run ({type(exc).__name__}: {str(exc)[:200]}).",
        }
    if diff is None or diff > ONNX_TOLERANCE:
        Path(out_path).unlink(missing_ok=True)
        return {
            "engine": "sklearn",
            "onnx_max_abs_diff": diff,
            "reason": f"No ONNX twin: its outputs differ from scikit-learn by {diff} on {len(sample)} reference "
            f"rows (tolerance {ONNX_TOLERANCE}).",
        }
    speed = {"sklearn": timings(predictor, sample), "onnx": timings(twin, sample)}
    return {
        "engine": "onnx",
        "onnx_max_abs_diff": diff,
        "timings": speed,
        "reason": f"ONNX twin matches scikit-learn within {ONNX_TOLERANCE} (max difference {diff:.2e}) on "
        f"{len(sample)} reference rows; single-row prediction {speed['onnx']['single_row_ms']} ms "
        f"against {speed['sklearn']['single_row_ms']} ms.",
    }


def _convert(model: Any, sample: pd.DataFrame) -> bytes:
    """skl2onnx with numeric inputs as float (widest operator support), then as double."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    errors = []
    for numeric_type in (FloatTensorType, DoubleTensorType):
        try:
            return _convert_as(model, sample, numeric_type)
        except Exception as exc:  # try the next input type
            errors.append(f"{type(exc).__name__}: {str(exc)[:150]}")
    raise RuntimeError("; ".join(errors))


def _convert_as(model: Any, sample: pd.DataFrame, numeric_type: Any) -> bytes:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType

    options = {id(_final_step(model)): {"zipmap": False}} if hasattr(model, "classes_") else None
    if getattr(model, "feature_names_in_", None) is not None:
        # One input per column, so mixed string and numeric columns keep their types.
        initial = [
            (str(c), (StringTensorType if column_kind(sample[c]) == "string" else numeric_type)([None, 1]))
            for c in sample.columns
        ]
        onnx_model = to_onnx(model, initial_types=initial, options=options, target_opset=17)
    else:
        initial = [("X", numeric_type([None, sample.shape[1]]))]
        onnx_model = to_onnx(model, initial_types=initial, options=options, target_opset=17)
    data = onnx_model.SerializeToString()
    ort.InferenceSession(data, providers=["CPUExecutionProvider"])  # every operator must have a kernel
    return data


def _final_step(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model


def _max_difference(reference: Any, twin: Any, sample: pd.DataFrame) -> float | None:
    if reference.classes is not None:
        expected, got = reference.predict_proba(sample), twin.predict_proba(sample)
    else:
        expected = reference.predict(sample).astype(float)
        got = twin.predict(sample).astype(float)
    if expected is None or got is None or np.shape(expected) != np.shape(got):
        return None
    return float(np.max(np.abs(np.asarray(expected) - np.asarray(got)))) if len(sample) else 0.0


# --- the whole job -----------------------------------------------------------------------------


def load(job: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    started = time.perf_counter()
    fmt = job["format"]
    if fmt == "onnx":
        predictor, facts = OnnxPredictor(job["artifact_path"]), {}
        model = None
    else:
        model, facts = load_skops(job) if fmt == "skops" else load_pickle(job)
        if model is None:
            return None, None, facts
        if not hasattr(model, "predict"):
            raise Failure(f"The file holds a {type(model).__name__}, which has no predict method.")
        predictor = SklearnPredictor(model)
    facts["load_seconds"] = round(time.perf_counter() - started, 4)
    return model, predictor, facts


def validate(job: dict[str, Any]) -> dict[str, Any]:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model, predictor, facts = load(job)
    if predictor is None:
        return facts
    if not job.get("reference_path"):
        raise Failure(
            "Reference data is needed to smoke-test the model: upload a CSV or Parquet sample of the "
            "training data (with the target column, to also get feature importance)."
        )
    frame = read_dataset(job["reference_path"], job["reference_format"])
    if predictor.engine == "onnx" and predictor.columns is None:
        predictor.columns = [c for c in frame.columns if c != job.get("target_column")]
    features, y = split_features(frame, job.get("target_column", ""), predictor)
    if features.empty:
        raise Failure("The reference data has no rows.")
    sample = features.head(SMOKE_ROWS)
    result: dict[str, Any] = {"outcome": "ready", **facts, "reference_rows": len(frame)}
    result["smoke"] = smoke_test(predictor, sample, job["task"])
    result["signature"] = infer_signature(features, predictor)
    result["timings"] = timings(predictor, sample)
    result["memory_mb"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1)
    result["framework"] = "onnx" if predictor.engine == "onnx" else type(model).__module__.split(".")[0]
    if model is not None and y is not None and len(features) >= 20:
        result["feature_importance"] = permutation_importance_of(model, features, y, job["task"])
    if model is not None:
        result["onnx"] = compile_onnx_twin(model, sample, predictor, job["onnx_out_path"])
    else:
        result["onnx"] = {"engine": "onnx", "reason": "Uploaded as ONNX: served by ONNX Runtime."}
    result["library_versions"] = library_versions()
    return result


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("scikit-learn", "skops", "onnxruntime", "skl2onnx", "numpy", "pandas"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


# --- evaluation for promotion gates: several models, the same rows ----------------------------


def classification_metrics(y: pd.Series, labels: np.ndarray, proba: np.ndarray | None, classes: list[Any]) -> dict:
    from sklearn import metrics

    y_text, label_text = y.astype(str).to_numpy(), labels.astype(str)
    result = {"accuracy": metrics.accuracy_score(y_text, label_text)}
    if len(classes) == 2:
        positive = str(classes[1])
        result["precision"] = metrics.precision_score(y_text, label_text, pos_label=positive, zero_division=0)
        result["recall"] = metrics.recall_score(y_text, label_text, pos_label=positive, zero_division=0)
        result["f1"] = metrics.f1_score(y_text, label_text, pos_label=positive, zero_division=0)
        if proba is not None and len(set(y_text)) == 2:
            result["roc_auc"] = metrics.roc_auc_score(y_text == positive, proba[:, 1])
    else:
        result["f1_macro"] = metrics.f1_score(y_text, label_text, average="macro", zero_division=0)
    if proba is not None:
        result["log_loss"] = metrics.log_loss(y_text, np.clip(proba, 1e-15, 1), labels=[str(c) for c in classes])
    return {name: round(float(value), 6) for name, value in result.items()}


def regression_metrics(y: pd.Series, predicted: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    truth, guess = y.astype(float).to_numpy(), predicted.astype(float)
    result = {"rmse": float(np.sqrt(metrics.mean_squared_error(truth, guess))),
              "mae": metrics.mean_absolute_error(truth, guess), "r2": metrics.r2_score(truth, guess)}
    return {name: round(float(value), 6) for name, value in result.items()}


def group_rates(frame: pd.DataFrame, y: pd.Series, labels: np.ndarray, classes: list[Any], column: str) -> dict:
    """Per group: size, positive prediction rate and true positive rate (for a fairness gap)."""
    positive = str(classes[-1])
    predicted_positive = labels.astype(str) == positive
    actual_positive = y.astype(str).to_numpy() == positive
    groups: dict[str, dict[str, float]] = {}
    for value, index in frame.groupby(frame[column].astype(str)).indices.items():
        actual = actual_positive[index]
        groups[value] = {
            "rows": len(index), "positive_rate": round(float(predicted_positive[index].mean()), 6),
            "tpr": round(float(predicted_positive[index][actual].mean()), 6) if actual.any() else None,
        }
    return groups


def evaluate_one(spec: dict[str, Any], frame: pd.DataFrame, job: dict[str, Any]) -> dict[str, Any]:
    _, predictor, facts = load({**job, **spec})
    if predictor is None:
        raise Failure(f"The {spec['key']} cannot be loaded: {facts}")
    if predictor.engine == "onnx" and predictor.columns is None:
        predictor.columns = [c for c in frame.columns if c != job["target_column"]]
    features, y = split_features(frame, job["target_column"], predictor)
    if y is None:
        raise Failure(f"The evaluation data has no target column {job['target_column']!r}.")
    labels = predictor.predict(features)
    if predictor.classes is None:
        return {"metrics": regression_metrics(y, labels)}
    proba = predictor.predict_proba(features)
    result: dict[str, Any] = {"metrics": classification_metrics(y, labels, proba, predictor.classes)}
    column = (job.get("fairness") or {}).get("column")
    if column:
        if column not in frame.columns:
            raise Failure(f"The fairness column {column!r} is not in the evaluation data.")
        result["groups"] = group_rates(frame, y, labels, predictor.classes, column)
    return result


def evaluate(job: dict[str, Any]) -> dict[str, Any]:
    frame = read_dataset(job["data_path"], job["data_format"])
    if frame.empty:
        raise Failure("The evaluation data has no rows.")
    results = {spec["key"]: evaluate_one(spec, frame, job) for spec in job["models"]}
    return {"outcome": "evaluated", "rows": len(frame), "results": results}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = evaluate(job) if job.get("mode") == "evaluate" else validate(job)
    except Failure as failure:
        result = {"outcome": "failed", "reason": str(failure)}
    except MemoryError:
        result = {"outcome": "failed", "reason": "The model needs more memory than the validator allows."}
    except Exception as exc:  # the model's own code failed: report it as the reason
        result = {"outcome": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:500]}"}
    Path(job["result_path"]).write_text(json.dumps(result, default=_plain))


if __name__ == "__main__":
    main()
