"""Retraining: Admin registrations."""
