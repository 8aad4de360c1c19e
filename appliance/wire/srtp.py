"""Authenticated streams: SRTP and SRTCP (RFC 3711) with a pre-shared key, through libsrtp.

Without a key anyone who can reach a listener's port can play on it or end its stream: the
seed's raw wire and plain RTP carry nothing that says who sent them. With a key, both ends
protect every RTP and RTCP packet with ``AES_CM_128_HMAC_SHA1_80`` (AES-128 counter mode,
80-bit HMAC-SHA1 tag), libsrtp's replay window rejects a packet seen before, and whatever
does not authenticate is dropped before anything reads it.

The key is the SRTP master key and master salt, 30 bytes, stored base64 in a file: exactly
what ffmpeg's ``-srtp_out_params`` takes, and (as hex) GStreamer's ``srtpenc key=``::

    head -c 30 /dev/urandom | base64 > listener.key && chmod 600 listener.key

:func:`load_key` refuses a file that group or others may read or write, as ssh does with a
private key: a key that anyone on the machine can read authenticates nothing, and saying so at
start-up is better than a warning line nobody reads.

Example::

    key = load_key(Path("listener.key"))
    outbound, inbound = SrtpProtector(key), SrtpUnprotector(key)
    wire = outbound.protect_rtp(rtp_packet)
    assert inbound.unprotect(wire) == rtp_packet      # SrtpError if it does not authenticate

One key serves both directions (our sender's stream, the listener's RTCP replies): the
keystream depends on the SSRC, and the two ends use different random SSRCs.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import stat
from pathlib import Path

import pylibsrtp
from pylibsrtp._binding import ffi  # type: ignore[import-not-found]

from appliance.errors import UsageError
from appliance.wire.rtp import HEADER_SIZE, VERSION

KEY_BYTES = 30
"""Master key (16 bytes) and master salt (14 bytes) of AES_CM_128_HMAC_SHA1_80."""
SUITE = "AES_CM_128_HMAC_SHA1_80"
"""The crypto suite, as ffmpeg's ``-srtp_out_suite`` and SDES (RFC 4568) name it."""
AUTH_TAG_BYTES = 10
SRTCP_TRAILER_BYTES = 4 + AUTH_TAG_BYTES
"""The E flag and SRTCP index, then the tag."""
RTCP_HEADER_BYTES = 8
MIN_SRTCP_BYTES = RTCP_HEADER_BYTES + SRTCP_TRAILER_BYTES
MAX_PACKET_BYTES = 65536
"""pylibsrtp's own buffer is 1500 bytes, too small for a 20 ms packet of 48 kHz stereo L16
(3852 bytes): ours holds any UDP datagram."""
UNSAFE_MODE_BITS = stat.S_IRWXG | stat.S_IRWXO


class SrtpFailure(enum.Enum):
    """Why a packet was dropped (the counters and the log name these)."""

    SHORT = "too short"
    NOT_RTP = "not RTP or RTCP"
    AUTH = "authentication failed"
    REPLAY = "replayed"
    OTHER = "not accepted"


class SrtpError(Exception):
    """A packet that does not authenticate (or cannot be protected); :attr:`failure` says why."""

    def __init__(self, failure: SrtpFailure, detail: str = "") -> None:
        super().__init__(f"{failure.value}{': ' + detail if detail else ''}")
        self.failure = failure


# -- the key file --------------------------------------------------------------------------


def parse_key(text: str, origin: str = "key") -> bytes:
    """The 30 key bytes from base64 ``text`` (whitespace and line breaks anywhere are fine)."""
    compact = "".join(text.split())
    if not compact:
        raise UsageError(f"{origin} is empty: it must hold {KEY_BYTES} bytes in base64")
    try:
        key = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(
            f"{origin} is not base64: it must hold {KEY_BYTES} bytes in base64 "
            "(head -c 30 /dev/urandom | base64)"
        ) from None
    if len(key) != KEY_BYTES:
        raise UsageError(
            f"{origin} holds {len(key)} bytes, not {KEY_BYTES} (16-byte master key and 14-byte "
            f"salt of {SUITE})"
        )
    return key


def load_key(path: Path) -> bytes:
    """The key in ``path``; :class:`UsageError` with one line for anything wrong with it."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"key file {path} is not a regular file")
        if mode & UNSAFE_MODE_BITS:
            raise UsageError(
                f"key file {path} is open to group or others (mode {stat.S_IMODE(mode):04o}): "
                f"chmod 600 {path}"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"key file {path} does not exist") from None
    except PermissionError:
        raise UsageError(f"key file {path} cannot be read (permission denied)") from None
    except OSError as error:
        raise UsageError(f"key file {path} cannot be read: {error.strerror}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"key file {path} is not base64 text") from None
    return parse_key(text, f"key file {path}")


def write_new_key(path: Path) -> bytes:
    """Create ``path`` (mode 0600, never over an existing file) with a random key."""
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists already: not overwritten") from None
    except OSError as error:
        raise UsageError(f"cannot create {path}: {error.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(base64.b64encode(key).decode("ascii") + "\n")
    return key


def gstreamer_caps_key(key: bytes) -> str:
    """The key as GStreamer's ``srtpdec`` caps want it: ``(buffer)HEX``."""
    return "(buffer)" + key.hex()


# -- protect and unprotect -------------------------------------------------------------------


def _session(key: bytes, direction: int) -> pylibsrtp.Session:
    if len(key) != KEY_BYTES:
        raise ValueError(f"an SRTP key is {KEY_BYTES} bytes, not {len(key)}")
    policy = pylibsrtp.Policy(
        key=key,
        ssrc_type=direction,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    session = pylibsrtp.Session(policy)
    # See MAX_PACKET_BYTES. Both attributes are what pylibsrtp's process method uses.
    session._cdata = ffi.new("char[]", MAX_PACKET_BYTES)
    session._buffer = ffi.buffer(session._cdata)
    return session


def _failure(message: str) -> SrtpFailure:
    if "replay" in message or "too old" in message:
        return SrtpFailure.REPLAY
    # "unable to perform desired validation": SRTCP sent unencrypted (E flag clear), which
    # this suite never accepts.
    if "authentication" in message or "validation" in message:
        return SrtpFailure.AUTH
    return SrtpFailure.OTHER


def is_rtcp_type(data: bytes) -> bool:
    """RTCP by its second byte (RFC 5761 section 4): the header SRTCP leaves in the clear."""
    return len(data) >= 2 and 192 <= data[1] <= 223


class SrtpProtector:
    """Protects what one end sends (any SSRC: each gets its own packet index)."""

    def __init__(self, key: bytes) -> None:
        self._session = _session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)

    def protect_rtp(self, packet: bytes) -> bytes:
        return self._process(self._session.protect, packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._process(self._session.protect_rtcp, packet)

    def protect(self, packet: bytes) -> bytes:
        """RTCP or RTP, told apart by the packet type."""
        if is_rtcp_type(packet):
            return self.protect_rtcp(packet)
        return self.protect_rtp(packet)

    @staticmethod
    def _process(function: object, packet: bytes) -> bytes:
        shortest = RTCP_HEADER_BYTES if is_rtcp_type(packet) else HEADER_SIZE
        if len(packet) < shortest or packet[0] >> 6 != VERSION:
            raise SrtpError(SrtpFailure.NOT_RTP)
        try:
            return bytes(function(packet))  # type: ignore[operator]
        except (pylibsrtp.Error, ValueError) as error:
            raise SrtpError(SrtpFailure.OTHER, str(error)) from None


class SrtpUnprotector:
    """Checks and decrypts what one end receives, from any SSRC, with replay protection.

    libsrtp keeps a replay window per SSRC and adds an SSRC only once one of its packets has
    authenticated, so strangers cannot make it grow.
    """

    def __init__(self, key: bytes) -> None:
        self._session = _session(key, pylibsrtp.Policy.SSRC_ANY_INBOUND)

    def unprotect(self, packet: bytes) -> bytes:
        """The RTP packet or RTCP compound inside ``packet``; :class:`SrtpError` otherwise."""
        if len(packet) < RTCP_HEADER_BYTES or packet[0] >> 6 != VERSION:
            short = len(packet) < RTCP_HEADER_BYTES
            raise SrtpError(SrtpFailure.SHORT if short else SrtpFailure.NOT_RTP)
        rtcp = is_rtcp_type(packet)
        if rtcp and len(packet) < MIN_SRTCP_BYTES:
            raise SrtpError(SrtpFailure.SHORT)
        if not rtcp and len(packet) < HEADER_SIZE + AUTH_TAG_BYTES:
            raise SrtpError(SrtpFailure.SHORT)
        if len(packet) > MAX_PACKET_BYTES:
            raise SrtpError(SrtpFailure.OTHER, "larger than any datagram")
        try:
            if rtcp:
                return bytes(self._session.unprotect_rtcp(packet))
            return bytes(self._session.unprotect(packet))
        except pylibsrtp.Error as error:
            raise SrtpError(_failure(str(error))) from None
        except ValueError as error:
            raise SrtpError(SrtpFailure.OTHER, str(error)) from None
