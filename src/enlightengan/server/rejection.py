"""A request the server refuses, with the HTTP status to answer and a message that says what to do."""

from __future__ import annotations

__all__ = ["Rejected"]


class Rejected(Exception):
    """A refused request: ``status`` is the HTTP status (400, 413 or 415), ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
