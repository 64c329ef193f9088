"""Scenario graphs the workflow tests share."""

from __future__ import annotations


def welcome(template_id: int = 1, sender_id: int = 1, reminder_template_id: int | None = None,
            wait_seconds: int = 3 * 86400) -> list[dict]:
    """entry (API) -> send -> wait -> branch (opened the first message?) -> reminder -> exit."""
    return [
        {"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "first"},
        {"id": "first", "type": "send", "template_id": template_id, "sender_id": sender_id, "next": "wait"},
        {"id": "wait", "type": "wait", "seconds": wait_seconds, "next": "opened?"},
        {"id": "opened?", "type": "branch", "condition": {"opened": "first"}, "yes": "done", "no": "reminder"},
        {"id": "reminder", "type": "send", "template_id": reminder_template_id or template_id,
         "sender_id": sender_id, "next": "done"},
        {"id": "done", "type": "exit"},
    ]
