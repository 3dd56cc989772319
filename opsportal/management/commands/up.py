"""Start web (gunicorn), worker and beat together, and stop them together.

The embedded mode's one process tree: if any part exits, the others are
stopped too, so a half-running portal never pretends to be healthy.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the portal: gunicorn web server, Celery worker and beat scheduler."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port for the web server")
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--no-worker", action="store_true", help="web server only")

    def commands(self, options: dict[str, Any]) -> dict[str, list[str]]:
        python = sys.executable
        commands = {
            "web": [
                python, "-m", "gunicorn", "opsportal.wsgi:application", "--bind", options["bind"],
                "--workers", str(options["web_workers"]), "--threads", "4",
                "--access-logfile", "-", "--graceful-timeout", "10",
            ]
        }
        if not options["no_worker"]:
            commands["worker"] = [
                python, "-m", "celery", "-A", "opsportal", "worker", "--beat",
                "--scheduler", settings.CELERY_BEAT_SCHEDULER,
                "--schedule", str(settings.VAR_DIR / "celerybeat-schedule"),
                "--queues", ",".join(settings.CELERY_QUEUE_NAMES),
                "--concurrency", str(settings.CELERY_WORKER_CONCURRENCY),
                "--loglevel", "INFO",
            ]
        return commands

    def handle(self, *args: Any, **options: Any) -> None:
        children = {name: subprocess.Popen(cmd) for name, cmd in self.commands(options).items()}
        self.stdout.write(self.style.SUCCESS(
            f"OpsPortal is starting on http://{options['bind']}/ ({', '.join(children)}); Ctrl+C stops everything."
        ))
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exited = None
        while not stopping and exited is None:
            time.sleep(0.5)
            exited = next((name for name, p in children.items() if p.poll() is not None), None)
        if exited:
            self.stderr.write(f"{exited} exited with code {children[exited].returncode}; stopping the rest.")
        for proc in children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in children.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if exited:
            sys.exit(1)
