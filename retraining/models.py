"""Retraining: Tables and facts about one row."""
