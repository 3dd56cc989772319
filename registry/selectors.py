"""Model registry: Reads."""
