"""SRTP and SRTCP with a pre-shared key (appliance.wire.srtp): the key file, protect and
unprotect through the real libsrtp, and a fuzz of the unprotect path."""

from __future__ import annotations

import base64
import random
import struct
from pathlib import Path

import pytest

from appliance.errors import UsageError
from appliance.wire.rtcp import Bye, pack_compound
from appliance.wire.srtp import (
    KEY_BYTES,
    SrtpError,
    SrtpFailure,
    SrtpProtector,
    SrtpUnprotector,
    gstreamer_caps_key,
    load_key,
    parse_key,
    write_new_key,
)

KEY = bytes(range(1, KEY_BYTES + 1))
OTHER_KEY = bytes(range(101, 101 + KEY_BYTES))
SSRC = 0x5EED5EED


def rtp(seq: int, payload: bytes = b"\x01\x02" * 160, ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHII", 0x80, 97, seq, seq * 160, ssrc) + payload


def bye(ssrc: int = SSRC) -> bytes:
    return pack_compound([Bye((ssrc,))])


def key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "listener.key"
    path.write_text(text)
    path.chmod(mode)
    return path


# -- the key file ---------------------------------------------------------------------------


def test_a_key_file_in_base64_with_whitespace_loads(tmp_path: Path) -> None:
    encoded = base64.b64encode(KEY).decode()
    path = key_file(tmp_path, f"  {encoded[:20]}\n {encoded[20:]}\n\n")
    assert load_key(path) == KEY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "key file {path} is empty: it must hold 30 bytes in base64"),
        ("not base64!", "key file {path} is not base64: it must hold 30 bytes in base64 "
         "(head -c 30 /dev/urandom | base64)"),
        (base64.b64encode(bytes(16)).decode(), "key file {path} holds 16 bytes, not 30 "
         "(16-byte master key and 14-byte salt of AES_CM_128_HMAC_SHA1_80)"),
    ],
)
def test_a_bad_key_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = key_file(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_key(path)
    assert str(caught.value) == message.format(path=path)


def test_a_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, base64.b64encode(KEY).decode(), mode=0o644)
    with pytest.raises(UsageError) as caught:
        load_key(path)
    assert str(caught.value) == (
        f"key file {path} is open to group or others (mode 0644): chmod 600 {path}"
    )
    path.chmod(0o400)
    assert load_key(path) == KEY


def test_a_missing_or_unreadable_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.key"
    with pytest.raises(UsageError) as caught:
        load_key(missing)
    assert str(caught.value) == f"key file {missing} does not exist"
    with pytest.raises(UsageError) as caught:
        load_key(tmp_path)
    assert str(caught.value) == f"key file {tmp_path} is not a regular file"
    binary = key_file(tmp_path, "")
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError) as caught:
        load_key(binary)
    assert str(caught.value) == f"key file {binary} is not base64 text"


def test_a_new_key_is_private_random_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "new.key"
    key = write_new_key(path)
    assert (path.stat().st_mode & 0o777, load_key(path)) == (0o600, key)
    with pytest.raises(UsageError) as caught:
        write_new_key(path)
    assert str(caught.value) == f"{path} exists already: not overwritten"
    assert load_key(path) == key


def test_the_same_key_for_ffmpeg_and_gstreamer() -> None:
    assert parse_key(base64.b64encode(KEY).decode()) == KEY
    assert gstreamer_caps_key(KEY) == "(buffer)" + KEY.hex()


# -- protect and unprotect -------------------------------------------------------------------


def test_rtp_and_rtcp_round_trip_and_replays_are_refused() -> None:
    protect, unprotect = SrtpProtector(KEY), SrtpUnprotector(KEY)
    packet, goodbye = rtp(1), bye()
    wire_packet, wire_bye = protect.protect(packet), protect.protect(goodbye)
    assert (len(wire_packet), len(wire_bye)) == (len(packet) + 10, len(goodbye) + 14)
    assert wire_packet[12:] != packet[12:]  # encrypted
    assert unprotect.unprotect(wire_packet) == packet
    assert unprotect.unprotect(wire_bye) == goodbye
    for replay in (wire_packet, wire_bye):
        with pytest.raises(SrtpError) as caught:
            unprotect.unprotect(replay)
        assert caught.value.failure is SrtpFailure.REPLAY
    # A second BYE gets a new SRTCP index: not a replay.
    assert unprotect.unprotect(protect.protect(goodbye)) == goodbye


def test_a_48_khz_stereo_packet_fits() -> None:
    packet = rtp(7, bytes(range(256)) * 15)  # 3840 bytes: 20 ms of 48 kHz stereo L16
    assert SrtpUnprotector(KEY).unprotect(SrtpProtector(KEY).protect(packet)) == packet


@pytest.mark.parametrize(
    ("datagram", "failure"),
    [
        (b"", SrtpFailure.SHORT),
        (b"\x80\x61", SrtpFailure.SHORT),
        (bytes(320), SrtpFailure.NOT_RTP),  # the seed's raw wire (silence)
        (rtp(1)[:12], SrtpFailure.SHORT),
        (rtp(1), SrtpFailure.AUTH),  # plain RTP
        (bye(), SrtpFailure.SHORT),  # a plain BYE: no room for an SRTCP trailer
        (bye() + bytes(14), SrtpFailure.AUTH),
    ],
)
def test_what_does_not_authenticate_is_a_typed_error(
    datagram: bytes, failure: SrtpFailure
) -> None:
    with pytest.raises(SrtpError) as caught:
        SrtpUnprotector(KEY).unprotect(datagram)
    assert caught.value.failure is failure


def test_another_key_and_a_flipped_bit_do_not_authenticate() -> None:
    wire = SrtpProtector(OTHER_KEY).protect(rtp(1))
    with pytest.raises(SrtpError) as caught:
        SrtpUnprotector(KEY).unprotect(wire)
    assert caught.value.failure is SrtpFailure.AUTH
    good = SrtpProtector(KEY).protect(rtp(1))
    unprotect = SrtpUnprotector(KEY)
    for index in (1, 20, len(good) - 1):
        tampered = bytearray(good)
        tampered[index] ^= 0x01
        with pytest.raises(SrtpError):
            unprotect.unprotect(bytes(tampered))
    assert unprotect.unprotect(good) == rtp(1)  # failures consumed no replay window


def test_fuzz_unprotect_raises_only_the_typed_error() -> None:
    """Random bytes, and SRTP-shaped ones (valid headers, real packets cut, flipped, padded):
    never anything but SrtpError, and nothing authenticates by chance."""
    generator = random.Random(11)
    protect, unprotect = SrtpProtector(KEY), SrtpUnprotector(KEY)
    genuine = [protect.protect(rtp(seq)) for seq in range(50)] + [protect.protect(bye())]
    failures: dict[SrtpFailure, int] = {}
    for trial in range(20_000):
        kind = trial % 4
        if kind == 0:
            data = generator.randbytes(generator.randrange(0, 1600))
        elif kind == 1:  # an RTP or RTCP header, random rest
            first = 0x80 | generator.randrange(0, 64)
            second = generator.choice([generator.randrange(0, 256), 200, 201, 203, 204])
            data = bytes([first, second]) + generator.randbytes(generator.randrange(0, 400))
        elif kind == 2:  # a genuine packet cut short or with bytes added
            data = generator.choice(genuine)
            cut = generator.randrange(0, len(data) + 30)
            data = data[:cut] + generator.randbytes(max(0, cut - len(data)))
        else:  # a genuine packet with random bytes changed
            changed = bytearray(generator.choice(genuine))
            for _ in range(generator.randrange(1, 4)):
                changed[generator.randrange(0, len(changed))] = generator.randrange(0, 256)
            data = bytes(changed)
        try:
            unprotect.unprotect(data)
        except SrtpError as error:
            failures[error.failure] = failures.get(error.failure, 0) + 1
        else:
            # Only an unchanged genuine packet may pass, and then only once.
            assert data in genuine
            genuine.remove(data)
    assert sum(failures.values()) >= 20_000 - 51
    assert failures.get(SrtpFailure.AUTH, 0) > 1000
