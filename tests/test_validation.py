"""Every flag and configuration value is checked: bad ones end in one line and exit 2, never a
traceback, and IPv6 bind addresses work (real subprocesses, real UDP on ::1 and 127.0.0.1)."""

from __future__ import annotations

import socket
import wave
from pathlib import Path

import pytest
from cli_runner import LOOPBACK, run_appliance
from listener_fixtures import ListenerFactory

from appliance.errors import UsageError
from appliance.listener.listener import ListenerConfig
from appliance.wire.raw import END_OF_STREAM, RAW_FORMAT

PLAY_TIMEOUT_S = 30
LISTEN = ("listen", *LOOPBACK, "--no-mdns", "--once")

FINITE = "must be a finite number of seconds"

BAD_FLAGS = [
    # (arguments, the one line's text after "error: ")
    (("--max-buffer-s", "nan"), f"argument --max-buffer-s: {FINITE}: 'nan'"),
    (("--max-buffer-s", "inf"), f"argument --max-buffer-s: {FINITE}: 'inf'"),
    (("--max-buffer-s", "-1"), "argument --max-buffer-s: must be more than 0 seconds: '-1'"),
    (("--timeout", "nan"), f"argument --timeout: {FINITE}: 'nan'"),
    (("--timeout", "inf"), f"argument --timeout: {FINITE}: 'inf'"),
    (("--timeout", "0"), "argument --timeout: must be more than 0 seconds: '0'"),
    (("--timeout", "soon"), "argument --timeout: not a number of seconds: 'soon'"),
    (("--takeover-s=-inf",), f"argument --takeover-s: {FINITE}: '-inf'"),
    (("--bind", ""), "argument --bind: must not be empty"),
    (("--device", " "), "argument --device: must not be empty"),
    (("--name", ""), "argument --name: must not be empty"),
    (("--allow", ""), "argument --allow: must not be empty"),
    (("--payload-map", ""), "argument --payload-map: must not be empty"),
    (("--port", "x"), "argument --port: invalid int value: 'x'"),
    (("--output-file", ""), "argument --output-file: must not be empty"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_FLAGS)
def test_a_bad_listen_flag_is_one_line_and_exit_2(
    arguments: tuple[str, ...], message: str
) -> None:
    result = run_appliance(*LISTEN, *arguments)
    assert (result.returncode, result.stderr) == (
        2,
        f"appliance listen: error: {message} (see appliance listen --help)\n",
    )


def test_the_playout_queue_bound_is_stated_and_kept() -> None:
    result = run_appliance(*LISTEN, "--max-buffer-s", "601")
    assert (result.returncode, result.stderr) == (
        2,
        "appliance listen: error: command line: [listen] max_buffer_s must be at most 600, "
        "not 601\n",
    )


def test_values_checked_together_are_one_line_too() -> None:
    result = run_appliance(*LISTEN, "--timeout", "1", "--takeover-s", "2")
    assert (result.returncode, result.stderr) == (
        2,
        "appliance listen: error: command line: [listen] takeover_s must be more than 0 and at "
        "most timeout_s (1), not 2.0\n",
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("discover", "--timeout", "inf"), f"argument --timeout: {FINITE}: 'inf'"),
        (("discover", "--timeout", "nan"), f"argument --timeout: {FINITE}: 'nan'"),
        (
            ("send", "x.raw", "--to", "127.0.0.1", "--mdns-timeout", "nan"),
            f"argument --mdns-timeout: {FINITE}: 'nan'",
        ),
        (("send", "", "--to", "127.0.0.1"), "argument FILE: must not be empty"),
        (
            ("send", "x.raw", "--to", "127.0.0.1", "--format", ""),
            "argument --format: must not be empty",
        ),
        (("status", ""), "argument name: must not be empty"),
        (("demo", "--file", ""), "argument --file: must not be empty"),
        (("demo", "--device", ""), "argument --device: must not be empty"),
    ],
)
def test_bad_flags_of_other_commands_are_one_line_and_exit_2(
    arguments: tuple[str, ...], message: str
) -> None:
    result = run_appliance(*arguments)
    command = arguments[0]
    assert (result.returncode, result.stderr) == (
        2,
        f"appliance {command}: error: {message} (see appliance {command} --help)\n",
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[listen]\ntimeout_s = nan\n", "[listen] timeout_s must be a finite number, not nan"),
        (
            "[listen]\nmax_buffer_s = inf\n",
            "[listen] max_buffer_s must be a finite number, not inf",
        ),
        ("[listen]\ntakeover_s = -inf\n", "[listen] takeover_s must be a finite number, not -inf"),
        ("[gpio]\nhold_time_s = nan\n", "[gpio] hold_time_s must be a finite number, not nan"),
        ("[volume]\nmax_db = inf\n", "[volume] max_db must be a finite number, not inf"),
        ('[listen]\nbind = ""\n', "[listen] bind must be an address (0.0.0.0 = all), not empty"),
        ('[listen]\ninterfaces = [""]\n', "[listen] interfaces has an empty entry"),
        ('[listen]\nallow = [" "]\n', "[listen] allow has an empty entry"),
    ],
)
def test_a_bad_config_value_is_one_line_and_exit_2(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "appliance.toml"
    no_gpio = "" if toml.startswith("[gpio]") else "[gpio]\nenabled = false\n"
    config.write_text(no_gpio + toml)
    result = run_appliance("listen", "--config", str(config), "--no-mdns", "--once")
    assert (result.returncode, result.stderr) == (
        2,
        f"appliance listen: error: {config}: {message}\n",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout_s": float("nan")}, "--timeout must be a finite number of seconds, not nan"),
        (
            {"max_buffer_s": float("inf")},
            "--max-buffer-s must be a finite number of seconds, not inf",
        ),
        ({"takeover_s": float("nan")}, "--takeover-s must be a finite number of seconds, not nan"),
        ({"bind": ""}, "--bind must be an address (0.0.0.0 = all), not empty"),
        ({"max_buffer_s": 601.0}, "--max-buffer-s must be at most 600 seconds"),
        ({"device": ""}, "--device must name a device, not be empty"),
    ],
)
def test_the_listener_config_refuses_what_bypasses_the_command_line(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        ListenerConfig(**options).validate()  # type: ignore[arg-type]
    assert str(refused.value) == message


def test_an_address_that_is_not_here_is_refused_by_name() -> None:
    # 2001:db8::/32 is documentation-only: never assigned to this machine, never contacted.
    result = run_appliance(*LISTEN, "--bind", "2001:db8::1")
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        1,
        "appliance listen: error: cannot listen on [2001:db8::1]:5005: no such address here",
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("bind", "family", "destination"),
    [
        ("::1", socket.AF_INET6, "::1"),
        ("[::1]", socket.AF_INET6, "::1"),
        ("::", socket.AF_INET6, "::1"),
        ("::", socket.AF_INET, "127.0.0.1"),  # dual stack: IPv4 arrives v4-mapped
    ],
)
def test_an_ipv6_bind_address_receives_a_stream_bit_exact(
    make_listener: ListenerFactory,
    tmp_path: Path,
    bind: str,
    family: socket.AddressFamily,
    destination: str,
) -> None:
    sent = bytes(range(1, 256)) * 25 + b"\x01"  # 6376 bytes: 19 whole datagrams and a tail
    assert len(sent) % RAW_FORMAT.frame_bytes == 0
    output = tmp_path / "played.wav"
    listener = make_listener(bind=bind, output_file=output)
    listener.start()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        packet = RAW_FORMAT.packet_bytes
        for start in range(0, len(sent), packet):
            sock.sendto(sent[start : start + packet], (destination, listener.port))
        sock.sendto(bytes(END_OF_STREAM), (destination, listener.port))
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    listener.close()
    with wave.open(str(output)) as wav:
        played = wav.readframes(wav.getnframes())
    start = played.find(sent)
    assert start >= 0
    assert played[:start].strip(b"\0") == b""
    assert played[start + len(sent) :].strip(b"\0") == b""
    [session] = listener.sessions
    assert session.audio_bytes == len(sent)
    assert session.source[0] == (destination if family == socket.AF_INET6 else "::ffff:127.0.0.1")
