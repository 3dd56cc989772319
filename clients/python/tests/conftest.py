"""Fixtures: a fake OpsPortal server per test, and a client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fake_portal import TOKEN, FakePortal, start
from opsportal_client import Client


@pytest.fixture
def portal() -> Iterator[FakePortal]:
    state = FakePortal()
    server = start(state)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(portal: FakePortal) -> Client:
    return Client(portal.url, TOKEN, timeout=10, progress=False)
