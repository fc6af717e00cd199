"""Errors the command line turns into a clear message and exit code 2."""
from __future__ import annotations


class BadInput(Exception):
    """Bad configuration, rules or arguments: nothing was run, nothing changed.

    The message already names the file and the key path, so the CLI prints it
    as is.
    """
