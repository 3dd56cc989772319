# OpsPortal image: one image for web, worker and beat (the command differs).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPSPORTAL_VAR_DIR=/var/lib/opsportal \
    STATIC_ROOT=/app/staticfiles

RUN useradd --create-home --uid 10001 opsportal \
 && mkdir -p /var/lib/opsportal /app/staticfiles \
 && chown opsportal /var/lib/opsportal
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# A throw-away key for collectstatic only; the real one comes from the environment.
RUN SECRET_KEY=collectstatic-only-not-used-at-runtime OPSPORTAL_VAR_DIR=/tmp/build \
    python manage.py collectstatic --noinput --verbosity 0 && rm -rf /tmp/build

USER opsportal
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["gunicorn", "opsportal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-", "--graceful-timeout", "20"]
