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


class MissingDependencyError(ApplianceError):
    """An optional package this command needs is not installed (PyAudio, for playing)."""


PYAUDIO_MISSING = (
    "PyAudio is not installed: pip install 'appliance[audio]' (it needs PortAudio: apt install "
    "portaudio19-dev, or python3-pyaudio on Debian and Raspberry Pi OS)"
)


def missing_pyaudio(error: ModuleNotFoundError) -> MissingDependencyError:
    """The one-line error for importing PyAudio's output without PyAudio (``appliance send``
    needs no PyAudio, so it is the ``audio`` extra). Any other missing module re-raises."""
    if error.name != "pyaudio":
        raise error
    return MissingDependencyError(PYAUDIO_MISSING)
