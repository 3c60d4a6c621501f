"""Errors that mean "the user's input is unusable", as opposed to bugs.

The CLI turns any ``UserInputError`` into a one-line message and exit code 2, so every
message must name the file, column or field at fault on its own.
"""


class UserInputError(ValueError):
    """Base class for errors caused by input the user controls (files, configs, requests)."""


class DataFileError(UserInputError):
    """A data file is missing, unreadable, empty or not in a supported format."""
