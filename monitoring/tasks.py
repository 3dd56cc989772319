"""Monitoring: Thin Celery tasks: take ids, call a service."""
