"""Business feedback: Tables and facts about one row."""
