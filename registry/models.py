"""Model registry: Tables and facts about one row."""
