"""Fuzzing every parser with a seeded generator: random bytes and RTP/RTCP-shaped bytes whose
fields lie (lengths off by one, padding counts and CSRC counts past the end, extension lengths
that overflow). Each parser either parses, and then round-trips, or raises its documented
``ValueError`` subclass: never an IndexError, a struct.error or anything else.

A seeded :class:`random.Random` rather than hypothesis: the shapes worth trying are few and
known (RFC 3550's fields), the runs are reproducible from the seed in the test id, and no
dependency is needed. A failure prints the datagram in hex: paste it into a unit test.
"""

from __future__ import annotations

import contextlib
import random
import struct
from collections.abc import Callable

import pytest

from appliance.audio.format import Encoding
from appliance.listener.depacketizer import (
    Depacketizer,
    RawDepacketizer,
    RtpDepacketizer,
    StreamDetector,
    rtp_depacketizer,
)
from appliance.wire import Wire
from appliance.wire.codecs import CODECS
from appliance.wire.payload import RTP_DEFAULT_FORMAT, PayloadMap
from appliance.wire.raw import InvalidDatagram, RawDatagram
from appliance.wire.reply import MAGIC, SIZE, ListenerReply, reply_in_compound
from appliance.wire.rtcp import is_rtcp, pack_compound, parse_compound
from appliance.wire.rtp import InvalidPacket, RtpPacket, looks_like_rtp, read_plain
from appliance.wire.timesync import GroupDelay, TimeRequest, TimeResponse, time_messages

ROUNDS = 20_000
SEEDS = (11, 2026)

Generator = Callable[[random.Random], bytes]


def random_bytes(rng: random.Random) -> bytes:
    """Mostly short (where the header checks are), sometimes up to a jumbo datagram."""
    size = rng.choice((rng.randrange(0, 40), rng.randrange(0, 400), rng.randrange(0, 9000)))
    return rng.randbytes(size)


def rtp_shaped(rng: random.Random) -> bytes:
    """A version-2 RTP header with random fields, and contents that may or may not match."""
    padded, extended, csrcs = rng.random() < 0.3, rng.random() < 0.3, rng.randrange(16)
    first = 0x80 | (0x20 if padded else 0) | (0x10 if extended else 0) | csrcs
    second = rng.randrange(256)
    header = struct.pack("!BBHII", first, second, *(rng.getrandbits(b) for b in (16, 32, 32)))
    # CSRC lists that lie: fewer, as many or more words than the count says.
    body = rng.randbytes(4 * max(0, csrcs + rng.choice((-1, 0, 0, 1))))
    if extended:
        words = rng.choice((0, 1, 2, rng.randrange(65536)))  # sometimes past the datagram
        body += struct.pack("!HH", rng.getrandbits(16), words)
        body += rng.randbytes(4 * min(words, 4) + rng.choice((-1, 0, 0, 1)) % 4)
    body += rng.randbytes(rng.choice((0, 1, 2, 160, 320, rng.randrange(1400))))
    if padded:
        pad = rng.randrange(256)
        body += bytes(max(0, pad - 1 + rng.choice((-1, 0, 0, 1)))) + bytes([pad])
    datagram = header + body
    return datagram[: rng.choice((len(datagram), len(datagram), rng.randrange(len(datagram) + 1)))]


def rtcp_shaped(rng: random.Random) -> bytes:
    """A compound of RTCP-looking packets whose length fields are right, or off by one."""
    parts = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        words = rng.choice((0, 1, 6, 7, rng.randrange(40)))
        count = rng.randrange(32)
        padded = rng.random() < 0.2
        ptype = rng.choice((200, 201, 202, 203, 204, rng.randrange(256)))
        body = bytearray(rng.randbytes(4 * words))
        if ptype == 203 and words and rng.random() < 0.5:
            body[4 * min(count, words - 1) : 4 * min(count, words - 1) + 1] = bytes(
                [rng.randrange(256)]
            )  # a BYE reason length that may overflow
        if padded and body:
            body[-1] = rng.randrange(256)
        length = words + rng.choice((0, 0, 0, -1, 1))
        first = 0x80 | (0x20 if padded else 0) | count
        parts.append(struct.pack("!BBH", first, ptype, length % 65536) + bytes(body))
    return b"".join(parts)


def reply_shaped(rng: random.Random) -> bytes:
    return MAGIC + rng.randbytes(rng.choice((SIZE - len(MAGIC), rng.randrange(40))))


GENERATORS: dict[str, Generator] = {
    "random": random_bytes,
    "rtp": rtp_shaped,
    "rtcp": rtcp_shaped,
    "reply": reply_shaped,
}


def datagrams(seed: int, kind: str) -> list[bytes]:
    rng = random.Random(f"{seed}-{kind}")
    return [GENERATORS[kind](rng) for _ in range(ROUNDS)]


CASES = [(seed, kind) for seed in SEEDS for kind in GENERATORS]


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_raw_parses_or_says_invalid(seed: int, kind: str) -> None:
    parsed = 0
    for data in datagrams(seed, kind):
        try:
            datagram = RawDatagram.parse(data)
        except InvalidDatagram:
            continue
        assert bytes(datagram) == data, data.hex()
        parsed += 1
    assert parsed > 0


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_rtp_parses_and_round_trips_or_says_invalid(seed: int, kind: str) -> None:
    outcomes = {"parsed": 0, "invalid": 0}
    for data in datagrams(seed, kind):
        plain = read_plain(data)
        looks_like_rtp(data)  # must not raise either
        try:
            packet = RtpPacket.parse(data)
        except InvalidPacket:
            outcomes["invalid"] += 1
            assert plain is None, data.hex()
            continue
        outcomes["parsed"] += 1
        assert RtpPacket.parse(bytes(packet)) == packet, data.hex()
        padding_bytes = data[len(data) - packet.padding : -1] if packet.padding else b""
        if not padding_bytes.strip(b"\0"):
            assert bytes(packet) == data, data.hex()
        if plain is not None:
            assert plain == (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc)
    if kind == "rtp":
        assert outcomes["parsed"] > ROUNDS // 10 and outcomes["invalid"] > ROUNDS // 10, outcomes


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_rtcp_parses_and_round_trips_or_says_invalid(seed: int, kind: str) -> None:
    outcomes = {"parsed": 0, "invalid": 0}
    for data in datagrams(seed, kind):
        headers_ok = is_rtcp(data)
        try:
            packets = parse_compound(data)
        except InvalidPacket:
            outcomes["invalid"] += 1
            continue
        outcomes["parsed"] += 1
        assert headers_ok, data.hex()
        assert parse_compound(pack_compound(packets)) == packets, data.hex()
        with contextlib.suppress(InvalidPacket):  # a compound that is not ours may be fine
            reply_in_compound(data)
        with contextlib.suppress(InvalidPacket):
            for message in time_messages(packets):
                assert type(message).parse(bytes(message)) == message, data.hex()
        for parser in (TimeRequest.parse, TimeResponse.parse, GroupDelay.parse):
            with contextlib.suppress(InvalidPacket):
                parsed = parser(data)
                assert bytes(parsed) == data, data.hex()
    if kind == "rtcp":
        assert outcomes["parsed"] > ROUNDS // 20 and outcomes["invalid"] > ROUNDS // 10, outcomes


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_listener_replies_parse_or_say_invalid(seed: int, kind: str) -> None:
    parsed = 0
    for data in datagrams(seed, kind):
        try:
            reply = ListenerReply.parse(data)
        except InvalidPacket:
            continue
        parsed += 1
        assert bytes(reply) == data[:SIZE], data.hex()
    if kind == "reply":
        assert parsed > 0


def timesync_shaped(rng: random.Random) -> bytes:
    """An APP packet named like ours (TIMQ, TIMR, APGD) with any subtype and data length,
    alone or after an empty receiver report, sometimes cut short."""
    name = rng.choice((b"TIMQ", b"TIMR", b"APGD"))
    data = rng.randbytes(4 * rng.choice((0, 1, 3, 7, rng.randrange(12))))
    subtype = rng.choice((0, 0, 0, rng.randrange(32)))
    body = rng.randbytes(4) + name + data
    app = struct.pack("!BBH", 0x80 | subtype, 204, len(body) // 4) + body
    datagram = (bytes.fromhex("80c9000100000005") if rng.random() < 0.5 else b"") + app
    return datagram[: rng.choice((len(datagram), len(datagram), rng.randrange(len(datagram))))]


@pytest.mark.parametrize("seed", SEEDS)
def test_time_messages_parse_and_round_trip_or_say_invalid(seed: int) -> None:
    rng = random.Random(f"timesync-{seed}")
    outcomes = {"parsed": 0, "invalid": 0}
    for _ in range(ROUNDS // 4):
        data = timesync_shaped(rng)
        try:
            messages = time_messages(parse_compound(data))
        except InvalidPacket:
            outcomes["invalid"] += 1
            continue
        outcomes["parsed"] += len(messages)
        for message in messages:
            assert type(message).parse(bytes(message)) == message, data.hex()
            assert bytes(message) in data, data.hex()
    assert outcomes["parsed"] > 100 and outcomes["invalid"] > 100, outcomes


@pytest.mark.parametrize("encoding", list(CODECS))
@pytest.mark.parametrize("channels", [1, 2])
def test_every_codec_decodes_any_bytes_to_whole_frames(encoding: Encoding, channels: int) -> None:
    codec = CODECS[encoding]
    wire_sample = 1 if encoding in (Encoding.PCMU, Encoding.PCMA) else 2
    rng = random.Random(f"codec-{encoding}-{channels}")
    for _ in range(2_000):
        data = random_bytes(rng)
        pcm = codec.decode(data, channels)
        frames = len(data) // (wire_sample * channels)
        assert len(pcm) == 2 * channels * frames, data.hex()
        if wire_sample == 2:
            assert codec.encode(pcm, channels) == data[: len(pcm)]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_detector_decides_every_datagram_once_and_never_raises(seed: int) -> None:
    rng = random.Random(f"detector-{seed}")
    pool = [g(rng) for g in GENERATORS.values() for _ in range(500)]
    valid = bytes(RtpPacket(97, 1, 160, 0x1234, bytes(320)))
    pool += [valid, bytes(RtpPacket(97, 2, 320, 0x1234, bytes(320)))] * 50
    for _ in range(2_000):
        detector = StreamDetector()
        offered = [rng.choice(pool) for _ in range(rng.randrange(1, 6))]
        decided: list[bytes] = []
        for data in offered:
            detection = detector.offer(data)
            if detection is not None:
                first, *rest = detection.datagrams
                # Copies of a first RTP packet are dropped as duplicates, and counted.
                decided += [first] * (1 + detection.duplicates) + rest
                if detection.wire is Wire.RTP:
                    assert detection.first_rtp == RtpPacket.parse(first)
        # Everything offered was decided, in order, or is still held for the decision.
        assert decided == offered[: len(decided)]
        assert detector.holding == (len(decided) < len(offered))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_depacketizers_take_any_datagram_or_raise_a_value_error(seed: int) -> None:
    rng = random.Random(f"depacketizer-{seed}")
    payloads = PayloadMap.from_texts(("96=L16/48000/2", "100=PCMA/8000"), RTP_DEFAULT_FORMAT)
    raw = RawDepacketizer(start_position=rng.randrange(1 << 20))
    streams: list[RtpDepacketizer] = [
        rtp_depacketizer(RtpPacket(pt, 7, 1000, 0xCAFE, bytes(8)), payloads, 0)
        for pt in (0, 8, 96, 97, 100)
    ]
    frames = {Wire.RAW: 0, Wire.RTP: 0}
    for _ in range(ROUNDS):
        data = rng.choice(tuple(GENERATORS.values()))(rng)
        if rng.random() < 0.3 and len(data) >= 12:  # the stream's own SSRC and type
            stream = rng.choice(streams)
            own = bytes([data[0], stream.payload_type]) + data[2:8] + (0xCAFE).to_bytes(4)
            data = own + data[12:]
        depacketizers: list[Depacketizer] = [raw, *streams]
        for depacketizer in depacketizers:
            try:
                frame = depacketizer.depacketize(data)
            except ValueError:
                continue
            if frame is not None:
                assert len(frame.payload) == frame.samples * frame.format.frame_bytes
                assert frame.samples > 0
                frames[depacketizer.wire] += 1
    # Both kinds of stream took some of it as audio: the fuzz reached past the header checks.
    assert frames[Wire.RAW] > 1000 and frames[Wire.RTP] > 1000, frames


def srtp_shaped(rng: random.Random, protected: list[bytes]) -> bytes:
    """A real SRTP packet with bytes flipped, cut or grown, or an RTP/RTCP-shaped forgery."""
    kind = rng.randrange(4)
    if kind == 0 and protected:
        forged = bytearray(rng.choice(protected))
        forged[rng.randrange(len(forged))] ^= 1 << rng.randrange(8)
        return bytes(forged)
    if kind == 1 and protected:
        packet = rng.choice(protected)
        return packet[: rng.randrange(len(packet))] + rng.randbytes(rng.choice((0, 1, 10)))
    return rng.choice((rtp_shaped, rtcp_shaped))(rng)


@pytest.mark.parametrize("seed", SEEDS)
def test_srtp_authenticates_what_was_protected_and_refuses_the_rest(seed: int) -> None:
    """Valid packets round-trip once (a replay is refused); forged, cut, random, plain RTP and
    RTCP ones raise SrtpError, the documented type, and never reach a parser."""
    srtp = pytest.importorskip("appliance.wire.srtp")
    rng = random.Random(f"srtp-{seed}")
    key = rng.randbytes(srtp.KEY_BYTES)
    protector, unprotector = srtp.SrtpProtector(key), srtp.SrtpUnprotector(key)
    packets = [
        bytes(RtpPacket(97, sequence, 160 * sequence, 0xAB, rng.randbytes(320)))
        for sequence in range(200)
    ]
    protected = [protector.protect_rtp(packet) for packet in packets]
    for packet, wire in zip(packets, protected, strict=True):
        assert unprotector.unprotect(wire) == packet
    with pytest.raises(srtp.SrtpError) as replayed:
        unprotector.unprotect(protected[-1])
    assert replayed.value.failure is srtp.SrtpFailure.REPLAY
    refused = 0
    for _ in range(ROUNDS // 4):
        data = rng.choice((random_bytes, lambda r: srtp_shaped(r, protected)))(rng)
        try:
            unprotector.unprotect(data)
        except srtp.SrtpError:
            refused += 1
    # A forgery does not authenticate: 2**-80 per try with HMAC-SHA1-80.
    assert refused == ROUNDS // 4
