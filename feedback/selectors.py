"""Business feedback: Reads."""
