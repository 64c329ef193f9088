"""Shared web pieces: the service app skeleton (health, readiness, metrics) and gunicorn."""
