"""Business feedback: Admin registrations."""
