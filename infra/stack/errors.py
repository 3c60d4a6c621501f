"""The one error the local stack raises for things the user can fix."""

from __future__ import annotations

from models.errors import UserInputError


class StackError(UserInputError):
    """The stack cannot be brought up or down as asked (busy port, crashed server, bad URL)."""
