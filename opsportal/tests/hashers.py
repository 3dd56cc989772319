"""Password hashing for the test suite: Django's PBKDF2, with fewer rounds.

Hashes keep Django's own `pbkdf2_sha256$<rounds>$...` format, so any OpsPortal process (a worker
or a portal a test starts) checks them with its standard hashers. At the production cost every
persona a test creates would spend about half a second of CPU.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
