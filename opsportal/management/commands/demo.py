"""Seed the demo story (see opsportal/demo.py) and print who can sign in, with which password."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from opsportal import demo


class Command(BaseCommand):
    help = ("Seed a realistic demo (churn model, 90 days of traffic with drift, labels, a campaign with a holdout, "
            "alerts, retraining) and print one sign-in per role. Run again: new passwords, same data.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=20260301, help="random seed of the generated data")

    def handle(self, *args: Any, **options: Any) -> None:
        if demo.already_seeded():
            self.stdout.write(f"The demo data is already here (model “{demo.MODEL_NAME}”); new passwords below.")
            self._credentials(demo.reset_passwords())
            return
        self.stdout.write("Seeding the demo: real model, validation in the sandbox, 90 days of scored traffic, "
                          "campaign, labels, monitoring and a retraining run (about a minute)…")
        started = time.perf_counter()
        try:
            seeded = demo.seed(seed=options["seed"])
        except demo.DemoError as error:
            raise CommandError(f"The demo could not be seeded: {error}") from error
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in seeded.timings.items())
        self.stdout.write(f"Seeded in {time.perf_counter() - started:.1f} s ({steps}).")
        self._story(seeded)
        self._credentials(seeded.passwords)

    def _story(self, seeded: demo.Demo) -> None:
        model = demo.MODEL_NAME
        self.stdout.write(
            f"  /models/{model}/                 v{seeded.champion.number} in production, "
            f"v{seeded.challenger.number} awaiting approval\n"
            f"  /approvals/{seeded.promotion.pk}/                  the challenger's gates and the approve button\n"
            f"  /monitoring/models/{model}/      drift growing in MonthlyCharges, realized AUC, open alerts\n"
            f"  /campaigns/{seeded.campaign.pk}/                   the retention offer against its holdout\n"
            f"  /retraining/runs/{seeded.retraining_run.pk}/            the run the drift alert started")

    def _credentials(self, passwords: dict[str, str]) -> None:
        banner = "=" * 64
        lines = [banner, f"  Demo sign-ins at {settings.SITE_URL}/accounts/login/"]
        for key, password in passwords.items():
            username = demo.PEOPLE[key][0]
            lines.append(f"    {demo.ROLE_LABELS[key]:<15} {username:<7} {password}")
        lines += ["  (passwords change each time the demo starts; shown only here)", banner]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
