"""OpsPortal settings, read from the environment (see `.env.example`).

Embedded defaults need no server: SQLite under `var/`, kombu's filesystem
broker, artifacts on local disk. Setting `DATABASE_URL` and
`CELERY_BROKER_URL` switches to the full stack with the same code.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from opsportal.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    load_dotenv_file,
    reject_unknown_dotenv_keys,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv_file(BASE_DIR / ".env")

VAR_DIR = Path(env_str("OPSPORTAL_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The configured key, else one generated once into `var/secret_key`."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(64))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "opsportal",
    "accounts",
    "registry",
    "scoring",
    "monitoring",
    "feedback",
    "retraining",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "opsportal.middleware.RequestSizeLimitMiddleware",
    # Token-authenticated JSON predictions answered here; anything else goes on to DRF.
    "scoring.fastlane.PredictFastLaneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opsportal.urls"
WSGI_APPLICATION = "opsportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "opsportal.views.navigation",
            ],
        },
    },
]

# --- database -------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'opsportal.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache ------------------------------------------------------------------
CACHE_URL = env_str("CACHE_URL", "locmem://")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
elif CACHE_URL == "locmem://":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r}: use locmem:// or redis://host:port/db")

# --- auth -------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Password guessing: an account, and separately an address, is locked after
# AXES_FAILURE_LIMIT failures for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.lockout_response"
AXES_VERBOSE = False

API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90, minimum=0)

# --- i18n, static, media ------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static"))).resolve()
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media"))).resolve()
MEDIA_URL = "media/"
# Artifacts and datasets: local disk (MEDIA_ROOT) or any S3-compatible store.
ARTIFACT_STORAGE = env_choice("ARTIFACT_STORAGE", "filesystem", ("filesystem", "s3"))
S3_OPTIONS = {
    "bucket_name": env_str("S3_BUCKET"),
    "endpoint_url": env_str("S3_ENDPOINT_URL") or None,
    "access_key": env_str("S3_ACCESS_KEY_ID") or None,
    "secret_key": env_str("S3_SECRET_ACCESS_KEY") or None,
    "region_name": env_str("S3_REGION") or None,
    "location": env_str("S3_PREFIX", "opsportal"),
    "file_overwrite": False,
    "default_acl": None,
}
if ARTIFACT_STORAGE == "s3" and not S3_OPTIONS["bucket_name"]:
    raise ImproperlyConfigured("ARTIFACT_STORAGE=s3 needs S3_BUCKET")
DEFAULT_STORAGE = (
    {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": S3_OPTIONS}
    if ARTIFACT_STORAGE == "s3"
    else {"BACKEND": "opsportal.storage.AtomicFileSystemStorage"}
)
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve straight from the source folders when collectstatic has not run.
WHITENOISE_USE_FINDERS = not (STATIC_ROOT / "staticfiles.json").exists()

# Request bounds: Django refuses bigger bodies / more fields with 413 / 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000, minimum=10)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 10, minimum=1)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 256 * 1024 * 1024, minimum=1024)

# --- model registry ---------------------------------------------------------------
# Bounds checked on a skops archive's central directory before any entry is read.
ARTIFACT_MAX_ZIP_ENTRIES = env_int("ARTIFACT_MAX_ZIP_ENTRIES", 10_000, minimum=10)
ARTIFACT_MAX_UNCOMPRESSED_BYTES = env_int("ARTIFACT_MAX_UNCOMPRESSED_BYTES", 2 * 1024**3, minimum=1024)
ARTIFACT_MAX_COMPRESSION_RATIO = 500
DATASET_MAX_COLUMNS = env_int("DATASET_MAX_COLUMNS", 2000, minimum=1)
# The validation subprocess: address-space cap and wall-clock limit.
SANDBOX_MEMORY_MB = env_int("SANDBOX_MEMORY_MB", 3072, minimum=256)
SANDBOX_TIMEOUT_SECONDS = env_int("SANDBOX_TIMEOUT_SECONDS", 300, minimum=5)
VALIDATION_MAX_ATTEMPTS = 3

# Outgoing webhooks: retries back off from this many seconds, doubling, up to the attempt limit.
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 10, minimum=1)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)

# --- retraining ------------------------------------------------------------------------
# Training functions a recipe may name: dotted paths to callables in installed modules. The web UI
# only picks from this list; it never takes code.
RETRAINING_FUNCTIONS = env_list("RETRAINING_FUNCTIONS", ["retraining.functions.balanced_logistic_regression"])

# --- scoring --------------------------------------------------------------------------
# Loaded models kept per web process, bounded by their summed artifact size (MB).
SCORING_CACHE_MAX_MB = env_int("SCORING_CACHE_MAX_MB", 512, minimum=1)
# Batch scoring: a chunk still "running" after this long is re-queued (its worker died).
SCORING_CHUNK_STALE_SECONDS = env_int("SCORING_CHUNK_STALE_SECONDS", 300, minimum=5)
# Share of real-time requests whose rows are written to the prediction log (1 = all).
PREDICTION_LOG_SAMPLE_RATE = env_float("PREDICTION_LOG_SAMPLE_RATE", 1.0, minimum=0.0, maximum=1.0)
# Each web process writes the prediction log and warms its model cache on background threads
# (tests turn them off and flush the log themselves).
SCORING_BACKGROUND_THREADS = env_bool("SCORING_BACKGROUND_THREADS", True)

# --- business feedback (campaigns, outcomes, labels) --------------------------------------
# Each group needs this many outcomes before a KPI's result is called (below it: "not enough data yet").
FEEDBACK_MIN_GROUP_SIZE = env_int("FEEDBACK_MIN_GROUP_SIZE", 100, minimum=2)
# Outcome files up to this size are read in the request; bigger ones by a worker, with a progress bar.
FEEDBACK_INLINE_UPLOAD_BYTES = env_int("FEEDBACK_INLINE_UPLOAD_BYTES", 1024 * 1024, minimum=0)
# Rows accepted in one JSON request (outcomes, labels, assignments); files take more.
FEEDBACK_MAX_JSON_ROWS = env_int("FEEDBACK_MAX_JSON_ROWS", 10_000, minimum=1)
# Largest campaign audience and label file, in rows.
FEEDBACK_MAX_AUDIENCE_ROWS = env_int("FEEDBACK_MAX_AUDIENCE_ROWS", 1_000_000, minimum=1)
# An outcome upload still "running" after this long is picked up again (its worker died).
FEEDBACK_UPLOAD_STALE_SECONDS = env_int("FEEDBACK_UPLOAD_STALE_SECONDS", 900, minimum=30)

# --- monitoring -------------------------------------------------------------------------
# A run reads at most this many logged predictions (the newest) from its window.
MONITORING_MAX_ROWS = env_int("MONITORING_MAX_ROWS", 200_000, minimum=100)
# Rows of reference and current data Evidently renders into a run's HTML report (verdicts use all rows).
MONITORING_REPORT_ROWS = env_int("MONITORING_REPORT_ROWS", 20_000, minimum=100)
# GET /metrics (Prometheus): requests must send "Authorization: Bearer <this token>".
# Empty: only signed-in approvers and admins (session or API token) can read it.
MONITORING_METRICS_TOKEN = env_str("MONITORING_METRICS_TOKEN")

# --- security ------------------------------------------------------------------
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)
CSRF_COOKIE_HTTPONLY = True

# --- email -------------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "OpsPortal <opsportal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Without an SMTP host, mail is written to files under var/mail for inspection.
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = VAR_DIR / "mail"

# --- REST API ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "opsportal.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/min"),
        "user": env_str("API_THROTTLE_USER", "6000/min"),
        "auth": env_str("API_THROTTLE_AUTH", "20/min"),
        "predict": env_str("API_THROTTLE_PREDICT", "60000/min"),
    },
    "EXCEPTION_HANDLER": "opsportal.api.exception_handler",
    # `?format=` belongs to the endpoints (e.g. results as csv or parquet), not to DRF's renderer switch.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_SCHEMA_CLASS": "opsportal.schema.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OpsPortal API",
    "DESCRIPTION": "Register, govern, score, monitor and retrain machine-learning models.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several tables have a `status`; name each choice set after its meaning.
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "registry.models.VersionStatus",
        "PromotionStatusEnum": "registry.models.RequestStatus",
        "DeliveryStatusEnum": "accounts.models.WebhookDelivery.Status",
        # Monitoring and retraining runs share one set of states.
        "RunStatusEnum": "retraining.models.RunStatus",
    },
}

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 7200, minimum=60)
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL == "filesystem://":
    # kombu's filesystem transport: one folder is both the in and out box, so a
    # separate worker process on the same machine sees what the web enqueues.
    BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Unacknowledged tasks come back after this long; every time limit below
    # stays under it so a long task is never handed to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": 10,
    }
else:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r}: use filesystem:// or redis://host:port/db"
    )
CELERY_TASK_ALWAYS_EAGER = False
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_QUEUE_NAMES = ("default", "scoring", "monitoring", "training")
CELERY_TASK_QUEUES = tuple(Queue(name) for name in CELERY_QUEUE_NAMES)
CELERY_TASK_ROUTES = {
    "scoring.tasks.*": {"queue": "scoring"},
    "monitoring.tasks.*": {"queue": "monitoring"},
    "retraining.tasks.*": {"queue": "training"},
}
# Deliberate limits: a soft limit lets the task record why it stopped; the hard
# limit kills it. Training gets its own, longer budget (set per task).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 660, minimum=2)
CELERY_TRAINING_TIME_LIMIT = env_int("CELERY_TRAINING_TIME_LIMIT", 3600, minimum=2)
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 2, minimum=1)
if max(CELERY_TASK_TIME_LIMIT, CELERY_TRAINING_TIME_LIMIT) >= CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        "Celery time limits must stay below CELERY_VISIBILITY_TIMEOUT, or a long task is redelivered twice"
    )
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The whole beat schedule, in one place; django-celery-beat copies it into the
# database, where admins can edit intervals or disable entries.
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "opsportal.tasks.heartbeat", "schedule": 60.0},
    "verify-audit-chain": {"task": "accounts.tasks.audit_verify", "schedule": 3600.0},
    "webhook-requeue-stale": {"task": "accounts.tasks.webhook_requeue_stale", "schedule": 300.0},
    "scoring-chunks-reconcile": {"task": "scoring.tasks.chunks_reconcile", "schedule": 30.0},
    # Every production model gets a daily monitoring schedule and default alert rules.
    "monitoring-ensure-defaults": {"task": "monitoring.tasks.defaults_ensure", "schedule": 3600.0},
    "monitoring-runs-reconcile": {"task": "monitoring.tasks.runs_reconcile", "schedule": 600.0},
    "retraining-new-labels": {"task": "retraining.tasks.labels_check", "schedule": 300.0},
    "retraining-runs-reconcile": {"task": "retraining.tasks.runs_reconcile", "schedule": 300.0},
    "feedback-reconcile": {"task": "feedback.tasks.reconcile", "schedule": 300.0},
}

# --- logging -------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_choice(
        "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")
    )},
}

reject_unknown_dotenv_keys()
