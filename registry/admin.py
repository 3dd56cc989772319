"""Model registry: Admin registrations."""
