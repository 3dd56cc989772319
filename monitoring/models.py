"""Monitoring: Tables and facts about one row."""
