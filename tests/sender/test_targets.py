"""One plan for several targets (appliance.sender.targets.plan_for_all)."""

from __future__ import annotations

from appliance.audio.format import AudioFormat
from appliance.discovery import ResolvedDestination
from appliance.discovery.records import ListenerProperties, ListenerRecord
from appliance.sender.plan import StreamPlan
from appliance.sender.targets import as_target, plan_for_all
from appliance.wire import Wire
from appliance.wire.payload import RTP_DEFAULT_FORMAT, PayloadMap, l16_table, parse_mapping

STEREO_48K = AudioFormat(48000, 2)


def by_name(name: str, *texts: str, last_octet: int = 20) -> ResolvedDestination:
    """An appliance listener found by name, its map extended by ``texts`` (a TXT round trip)."""
    dynamic = {**l16_table(112), **dict(parse_mapping(t) for t in texts)}
    props = ListenerProperties.for_payload_map(PayloadMap(dynamic, RTP_DEFAULT_FORMAT))
    props = ListenerProperties.parse(props.to_properties())
    address = f"192.0.2.{last_octet}"
    record = ListenerRecord(name, "pi.local.", (address,), 5005, props)
    return ResolvedDestination(address, 5005, record)


def test_listeners_that_agree_get_their_own_plan() -> None:
    targets = [by_name("kitchen"), by_name("bedroom", last_octet=21)]
    plan = plan_for_all(STEREO_48K, targets, source_name="song.wav")
    assert plan == StreamPlan(Wire.RTP, STEREO_48K, 127)


def test_an_address_among_them_makes_it_the_raw_wire() -> None:
    targets = [by_name("kitchen"), ResolvedDestination("192.0.2.30", 5005)]
    plan = plan_for_all(STEREO_48K, targets, source_name="song.wav")
    assert (plan.wire, plan.source_format.rate, plan.source_format.channels) == (
        Wire.RAW, 8000, 1
    )


def test_a_type_both_play_as_the_format_is_found() -> None:
    # kitchen maps 127 to something else: the built-in type is no longer common.
    targets = [by_name("kitchen", "127=PCMA/8000"), by_name("bedroom", last_octet=21)]
    plan = plan_for_all(STEREO_48K, targets, source_name="song.wav")
    # kitchen has no 48 kHz stereo any more: the best both play (the highest rate first).
    assert plan == StreamPlan(Wire.RTP, AudioFormat(48000, 1), 126)


def test_first_choices_that_differ_fall_back_to_a_type_both_play() -> None:
    # kitchen would send 48 kHz stereo on its own 96, bedroom on the built-in 127.
    targets = [by_name("kitchen", "96=L16/48000/2"), by_name("bedroom", last_octet=21)]
    assert plan_for_all(STEREO_48K, targets, source_name="x") == StreamPlan(
        Wire.RTP, STEREO_48K, 127
    )


def test_found_by_name_must_report_an_address_need_not() -> None:
    assert as_target(by_name("kitchen")).required
    assert as_target(by_name("kitchen")).name == "kitchen (192.0.2.20:5005)"
    assert not as_target(ResolvedDestination("192.0.2.30", 5005)).required
