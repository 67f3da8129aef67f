"""The service layer: plain functions over a session and a clock; the CLI stays thin over it."""
