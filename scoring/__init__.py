"""Real-time predict API, model cache, batch scoring jobs, prediction log."""
