"""Model registry: HTML pages and partials (templates/registry/)."""
