"""Payload types: RFC 3551's static audio types, ``--payload-map`` texts, and the lookup."""

from __future__ import annotations

import re

import pytest

from appliance.audio.format import SUPPORTED_RATES, AudioFormat, Encoding
from appliance.errors import UsageError
from appliance.wire.payload import (
    BUILTIN_DYNAMIC,
    DYNAMIC_TYPES,
    ENCODING_NAMES,
    STATIC_FORMATS,
    PayloadMap,
    mapping_text,
    parse_mapping,
)
from appliance.wire.raw import RAW_FORMAT

RATES = "8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000"
FORM = "expected PT=ENCODING/RATE[/CHANNELS], e.g. 96=L16/48000/2"


def test_static_formats_are_rfc_3551_table_4() -> None:
    assert {
        0: AudioFormat(8000, 1, Encoding.PCMU, 20),
        8: AudioFormat(8000, 1, Encoding.PCMA, 20),
        10: AudioFormat(44100, 2, Encoding.S16BE, 20),
        11: AudioFormat(44100, 1, Encoding.S16BE, 20),
    } == STATIC_FORMATS
    assert list(DYNAMIC_TYPES) == list(range(96, 128))
    assert dict(ENCODING_NAMES) == {
        "L16": Encoding.S16BE,
        "PCMU": Encoding.PCMU,
        "PCMA": Encoding.PCMA,
    }


@pytest.mark.parametrize(
    ("text", "pt", "fmt"),
    [
        ("96=L16/48000/2", 96, AudioFormat(48000, 2, Encoding.S16BE, 20)),
        ("97=l16/8000", 97, AudioFormat(8000, 1, Encoding.S16BE, 20)),
        ("100=PCMU/8000/1", 100, AudioFormat(8000, 1, Encoding.PCMU, 20)),
        ("127=pcma/16000/2", 127, AudioFormat(16000, 2, Encoding.PCMA, 20)),
        (" 101 = L16 / 44100 ", 101, AudioFormat(44100, 1, Encoding.S16BE, 20)),
    ],
)
def test_parse_mapping(text: str, pt: int, fmt: AudioFormat) -> None:
    assert parse_mapping(text) == (pt, fmt)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("96=L24/48000", "unknown encoding 'L24' (known: L16, PCMA, PCMU)"),
        ("96=s16le/8000", "unknown encoding 's16le' (known: L16, PCMA, PCMU)"),
        ("96", FORM),
        ("", FORM),
        ("96=L16", FORM),
        ("96=L16/48000/2/1", FORM),
        ("95=L16/48000", "payload type 95 is not dynamic (96-127)"),
        ("0=PCMU/8000", "payload type 0 is not dynamic (96-127)"),
        ("128=L16/48000", "payload type 128 is not dynamic (96-127)"),
        ("x=L16/48000", "payload type 'x' is not a whole number"),
        ("=L16/48000", "payload type '' is not a whole number"),
        ("-96=L16/48000", "payload type '-96' is not a whole number"),
        ("96=L16/44000", f"44000 Hz is not a supported rate ({RATES})"),
        ("96=L16/48k", "rate '48k' is not a whole number"),
        ("96=L16/48000/3", "3 channels: only mono and stereo are played"),
        ("96=L16/48000/0", "0 channels: only mono and stereo are played"),
        ("96=PCMU/8000/x", "channel count 'x' is not a whole number"),
    ],
)
def test_parse_mapping_errors(text: str, problem: str) -> None:
    message = f"payload map '{text}': {problem}"
    with pytest.raises(UsageError, match=f"^{re.escape(message)}$"):
        parse_mapping(text)


@pytest.mark.parametrize(
    ("pt", "fmt", "text"),
    [
        (96, AudioFormat(48000, 2, Encoding.S16BE), "96=L16/48000/2"),
        (97, AudioFormat(8000, 1, Encoding.S16BE), "97=L16/8000"),
        (98, AudioFormat(8000, 1, Encoding.PCMU), "98=PCMU/8000"),
        (99, AudioFormat(22050, 2, Encoding.PCMA), "99=PCMA/22050/2"),
    ],
)
def test_mapping_text_is_the_inverse(pt: int, fmt: AudioFormat, text: str) -> None:
    assert mapping_text(pt, fmt) == text
    assert parse_mapping(text) == (pt, fmt)


def test_mapping_text_needs_a_wire_encoding() -> None:
    with pytest.raises(ValueError, match="s16le has no RTP encoding name"):
        mapping_text(96, RAW_FORMAT)


def test_format_for() -> None:
    payloads = PayloadMap.from_texts(["96=L16/48000/2", "98=PCMA/8000"], default=RAW_FORMAT)
    assert payloads.format_for(0) == AudioFormat(8000, 1, Encoding.PCMU, 20)
    assert payloads.format_for(8) == AudioFormat(8000, 1, Encoding.PCMA, 20)
    assert payloads.format_for(10) == AudioFormat(44100, 2, Encoding.S16BE, 20)
    assert payloads.format_for(11) == AudioFormat(44100, 1, Encoding.S16BE, 20)
    assert payloads.format_for(96) == AudioFormat(48000, 2, Encoding.S16BE, 20)
    assert payloads.format_for(98) == AudioFormat(8000, 1, Encoding.PCMA, 20)
    # Unmapped dynamic types are L16 at the default's rate and channels.
    assert payloads.format_for(97) == AudioFormat(8000, 1, Encoding.S16BE, 20)
    assert payloads.format_for(111) == AudioFormat(8000, 1, Encoding.S16BE, 20)
    # 112-127: the built-in L16 table.
    assert payloads.format_for(112) == AudioFormat(8000, 1, Encoding.S16BE, 20)
    assert payloads.format_for(125) == AudioFormat(44100, 2, Encoding.S16BE, 20)
    assert payloads.format_for(127) == AudioFormat(48000, 2, Encoding.S16BE, 20)
    for not_audio in (72, 20, 1, 9, 13, 34, 95, 128, -1):
        assert payloads.format_for(not_audio) is None


def test_unmapped_dynamic_type_follows_the_default() -> None:
    default = AudioFormat(44100, 2, Encoding.S16LE, ptime_ms=10)
    payloads = PayloadMap.from_texts([], default=default)
    assert payloads.format_for(97) == AudioFormat(44100, 2, Encoding.S16BE, 10)
    assert payloads.format_for(0) == STATIC_FORMATS[0]


def test_a_payload_type_given_twice_is_a_usage_error() -> None:
    message = "payload map '96=PCMU/8000': payload type 96 is already mapped (96=L16/48000/2)"
    with pytest.raises(UsageError, match=f"^{re.escape(message)}$"):
        PayloadMap.from_texts(["96=L16/48000/2", "96=PCMU/8000"], default=RAW_FORMAT)


def test_from_texts_reports_the_bad_text() -> None:
    with pytest.raises(UsageError, match=r"^payload map '97=L8/8000': unknown encoding 'L8'"):
        PayloadMap.from_texts(["96=L16/48000/2", "97=L8/8000"], default=RAW_FORMAT)


def test_only_dynamic_types_can_be_mapped() -> None:
    with pytest.raises(ValueError, match="payload type 0 is not dynamic"):
        PayloadMap({0: RAW_FORMAT}, RAW_FORMAT)


def test_the_builtin_table_covers_every_rate_mono_and_stereo_and_yields_to_a_map() -> None:
    assert sorted(BUILTIN_DYNAMIC) == list(range(112, 128))
    assert {(f.rate, f.channels) for f in BUILTIN_DYNAMIC.values()} == {
        (rate, channels) for rate in SUPPORTED_RATES for channels in (1, 2)
    }
    assert {f.encoding for f in BUILTIN_DYNAMIC.values()} == {Encoding.S16BE}
    payloads = PayloadMap.from_texts(["127=PCMU/8000"], default=RAW_FORMAT)
    assert payloads.format_for(127) == AudioFormat(8000, 1, Encoding.PCMU, 20)
    without = PayloadMap({}, RAW_FORMAT, builtin={})
    assert without.format_for(127) == AudioFormat(8000, 1, Encoding.S16BE, 20)
