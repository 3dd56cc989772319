"""Scoring: Admin registrations."""
