"""Business feedback: HTML pages and partials (templates/feedback/)."""
