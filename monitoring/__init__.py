"""Reference profiles, drift and data-quality runs, Evidently reports, performance once labels arrive,
service health, alert rules and alerts.
"""
