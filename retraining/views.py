"""Retraining: HTML pages and partials (templates/retraining/)."""
