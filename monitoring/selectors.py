"""Monitoring: Reads."""
