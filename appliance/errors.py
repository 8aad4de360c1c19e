"""Errors a user can cause and fix. The command line prints them as one line, no traceback."""

from __future__ import annotations


class ApplianceError(Exception):
    """Base of every error that is the user's to fix (bad file, busy port, no device...)."""

    exit_code = 1


class UsageError(ApplianceError):
    """Arguments or configuration that cannot work."""

    exit_code = 2


class SourceError(ApplianceError):
    """An audio source that cannot be read or is not in the appliance's format."""


class AudioDeviceError(ApplianceError):
    """No usable audio output device."""


class NetworkError(ApplianceError):
    """A socket that cannot be opened (port in use, unknown host...)."""


class DiscoveryError(ApplianceError):
    """A listener name that is unknown or ambiguous on the network."""
