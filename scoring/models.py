"""Scoring: Tables and facts about one row."""
