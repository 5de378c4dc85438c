"""Typed errors. Library code raises these; only :mod:`nmt.cli` turns them into exit codes.

Every message is one line that names the file, line or key at fault and, where it can, says
what to do about it.
"""

from __future__ import annotations


class NmtError(Exception):
    """Base class of every error a user can cause (bad file, bad config, bad checkpoint)."""

    exit_code = 1


class ConfigError(NmtError):
    """A config file or override is invalid: unknown key, wrong type, impossible value."""

    exit_code = 2


class DataError(NmtError):
    """A corpus or input file is missing, unreadable, misaligned or not valid UTF-8."""

    exit_code = 3


class CheckpointError(NmtError):
    """A run directory or checkpoint is missing, incomplete, unsafe or inconsistent."""

    exit_code = 4


class TrainingError(NmtError):
    """Training cannot go on (e.g. too many non-finite losses in a row)."""

    exit_code = 5
