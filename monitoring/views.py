"""Monitoring: HTML pages and partials (templates/monitoring/)."""
