"""Outgoing network access: where we may connect, and the HTTP session enforcing it."""
