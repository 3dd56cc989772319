"""Scoring: HTML pages and partials (templates/scoring/)."""
