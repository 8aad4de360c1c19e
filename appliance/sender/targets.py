"""Several ``--to``: who to send to, and one stream that every one of them plays.

``--to`` is repeatable (``--to kitchen --to bedroom``), and ``--to all`` is every listener
found over mDNS within the lookup timeout (:func:`resolve_targets`). One stream goes to all of
them, the packets to each leaving together (:class:`~appliance.sender.sender.Sender` with
``targets=``), so it is planned once for all (:func:`plan_for_all`): the plan of each target
when they agree; else, if any target gets the raw wire, the raw wire for all (every appliance
listener plays it too); else RTP at the best format every target plays
(:func:`~appliance.sender.conversion.choose_format` on the intersection of what they play), on a
payload type that every one of them plays as that format.

Example::

    resolved = resolve_targets(["kitchen", "bedroom"], 5005, None, 3.0)
    plan = plan_for_all(source.format, resolved, source_name=source.name, force=None)
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.audio.format import AudioFormat
from appliance.discovery import (
    ResolvedDestination,
    discover_listeners,
    preferred_address,
    resolve_destination,
)
from appliance.discovery.records import AUTH_SRTP
from appliance.errors import DiscoveryError, UsageError
from appliance.sender.conversion import choose_format
from appliance.sender.plan import (
    ASSUMED_LISTENER,
    StreamPlan,
    choose_payload_type,
    listener_payload_type,
    plan_stream,
    playable_formats,
)
from appliance.sender.sender import Target
from appliance.wire import Wire
from appliance.wire.raw import RAW_FORMAT

ALL = "all"
"""``--to all``: every listener found over mDNS."""


def resolve_targets(
    texts: Sequence[str],
    default_port: int,
    interfaces: Sequence[str] | None,
    timeout: float,
) -> list[ResolvedDestination]:
    """Each ``--to`` looked up (:func:`~appliance.discovery.resolve_destination`), ``all``
    browsed for ``timeout`` seconds; the same address and port twice is sent to once."""
    resolved: list[ResolvedDestination] = []
    for text in texts:
        if text.strip().lower() == ALL:
            records = discover_listeners(timeout, interfaces)
            if not records:
                raise DiscoveryError(
                    f"--to all: no listener answered over mDNS within {timeout:g} s"
                )
            found = [
                ResolvedDestination(preferred_address(r.addresses), r.port, r)
                for r in sorted(records, key=lambda r: r.name.lower())
                if r.addresses
            ]
        else:
            found = [resolve_destination(text, default_port, interfaces, timeout)]
        for destination in found:
            where = (destination.address, destination.port)
            if all((d.address, d.port) != where for d in resolved):
                resolved.append(destination)
    return resolved


def check_keys(resolved: Sequence[ResolvedDestination], *, has_key: bool) -> None:
    """:class:`UsageError` for a listener found by name that needs a key we lack (it would
    drop every packet), or that takes none while we have one (it would play SRTP as noise)."""
    for destination in resolved:
        if destination.listener is None:
            continue
        needs_key = destination.listener.properties.auth == AUTH_SRTP
        if needs_key and not has_key:
            raise UsageError(
                f"{destination.describe()} plays only authenticated streams: give its key "
                "with --key-file FILE"
            )
        if has_key and not needs_key:
            raise UsageError(
                f"{destination.describe()} takes no key (it plays anyone's stream): "
                "send without --key-file"
            )


def as_target(destination: ResolvedDestination) -> Target:
    """The sender's target: a listener found by name is an appliance listener that must
    report; an address or host name may be anything (the seed's client never reports)."""
    return Target(
        (destination.address, destination.port),
        destination.describe(),
        required=destination.listener is not None,
    )


def plan_for_all(
    source_format: AudioFormat,
    resolved: Sequence[ResolvedDestination],
    *,
    source_name: str,
    force: Wire | None = None,
) -> StreamPlan:
    """One plan every target plays (see the module docstring); :class:`UsageError` if the
    targets have no RTP format and payload type in common."""
    plans = [
        plan_stream(
            source_format, r.listener, source_name=source_name, target=r.describe(), force=force
        )
        for r in resolved
    ]
    if all(plan == plans[0] for plan in plans):
        return plans[0]
    if any(plan.wire is Wire.RAW for plan in plans):
        return StreamPlan(Wire.RAW, RAW_FORMAT.with_ptime(source_format.ptime_ms))
    properties = [
        r.listener.properties
        if r.listener is not None and r.listener.properties.plays_rtp
        else ASSUMED_LISTENER
        for r in resolved
    ]
    common = set.intersection(*(playable_formats(Wire.RTP, p) for p in properties))
    sent = choose_format(source_format, common)
    if sent is not None:
        types = {listener_payload_type(sent, p) for p in properties}
        if len(types) == 1 and None not in types:
            return StreamPlan(Wire.RTP, sent, types.pop())
        # Their first choices differ (a user's map): a type that every one plays as it.
        first = properties[0].rtp_formats()
        shared = {
            payload_type: fmt
            for payload_type, fmt in first.items()
            if all(p.rtp_formats().get(payload_type) == fmt for p in properties[1:])
        }
        payload_type = choose_payload_type(sent, shared, (), properties[0].l16_base)
        if payload_type is not None:
            return StreamPlan(Wire.RTP, sent, payload_type)
    names = ", ".join(r.describe() for r in resolved)
    raise UsageError(
        f"{names} have no RTP format and payload type in common for {source_name}: "
        "send to them one at a time"
    )
