"""Altcraft: an open, installable on-premise marketing platform."""

__version__ = "0.1.0"
