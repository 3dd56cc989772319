"""Fixtures for the retraining tests (personas and registry fixtures come from the root conftest)."""

from retraining.tests.fixtures import champion, make_recipe  # noqa: F401
