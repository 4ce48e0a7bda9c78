"""User-facing errors: one clear line, exit code 2 (bad input) from the CLI."""

from __future__ import annotations


class SSLBenchError(Exception):
    """Bad input or missing resource; the CLI prints the message on one line and exits 2."""

    exit_code = 2


class UnknownNameError(SSLBenchError):
    """A registry lookup failed; the message carries 'Did you mean' suggestions."""


class ConfigError(SSLBenchError):
    """A config key, value or suite file is invalid."""


class DataNotFoundError(SSLBenchError):
    """A data set is not under the data root and cannot be downloaded here."""
