"""Retraining: Reads."""
