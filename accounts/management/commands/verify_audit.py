from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.services import audit_verify


class Command(BaseCommand):
    help = "Walk the audit trail's hash chain and report the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify()
        if not report.ok:
            raise CommandError(
                f"Audit chain broken at event #{report.broken_at} "
                f"(after {report.checked} intact events): {report.reason}"
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified."))
