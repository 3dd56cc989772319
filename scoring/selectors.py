"""Scoring: Reads."""
