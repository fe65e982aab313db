"""The one exception for invalid input: :class:`ConfigError` (exit code 2 at the CLI)."""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid configuration value or input file; the message names the key (or column) and
    the allowed values. Raised before any compute; the CLI turns it into exit code 2."""
