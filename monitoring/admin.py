"""Monitoring: Admin registrations."""
