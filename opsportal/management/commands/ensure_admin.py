"""Create the first administrator when there is none, and say how to sign in."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from accounts.models import Team
from accounts.services import audit_record


class Command(BaseCommand):
    help = "Create an admin account (random password, printed once) unless a superuser exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        url = settings.SITE_URL + "/"
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write(
                f"Sign in at {url} with your admin account "
                f"(forgot it? python manage.py changepassword {options['username']})."
            )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_superuser(username=options["username"], email="", password=password)
            Team.objects.get_or_create(slug="data-science", defaults={"name": "Data science"})[0].members.add(user)
            audit_record(actor=None, action="user.admin_created", target=user)
        banner = "=" * 64
        self.stdout.write(self.style.SUCCESS(
            f"{banner}\n  First admin created. Sign in at {url}\n"
            f"    username: {user.get_username()}\n    password: {password}\n"
            f"  (shown once; change it with: python manage.py changepassword {user.get_username()})\n{banner}"
        ))
