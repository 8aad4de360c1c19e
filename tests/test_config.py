"""The TOML configuration: defaults, the installed template, errors naming the key, flags."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from appliance import config as config_module
from appliance.config import (
    ApplianceConfig,
    GpioSection,
    ListenSection,
    VolumeSection,
    add_config_arguments,
    apply_overrides,
    load_config,
    parse_config,
    resolve_shutdown_on_hold,
    should_autostart,
)
from appliance.errors import UsageError

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "appliance.toml"
SETTING = re.compile(r"^# (\w+) = (.+)$")


def uncommented(template: str) -> str:
    """The template with every documented default switched on."""
    return "\n".join(line[2:] if SETTING.match(line) else line for line in template.splitlines())


def test_missing_default_file_means_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert load_config(None) == ApplianceConfig()


def test_existing_default_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text("[listen]\nport = 6000\n")
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", path)
    assert load_config(None) == ApplianceConfig(listen=ListenSection(port=6000), source=path)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert str(error.value) == f"config file not found: {path}"


def test_every_key_read(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(
        """
[listen]
port = 6000
bind = "127.0.0.1"
buffer_ms = 100
timeout_s = 2
device = "USB Audio"
max_buffer_s = 30.5
name = "kitchen"
interfaces = ["192.168.1.20"]
autostart = false

[gpio]
enabled = true
listen_button = 3
volume_up_button = 22
volume_down_button = 23
status_led = 16
underrun_led = false
error_led = 26
hold_time_s = 5
shutdown_on_hold = true

[volume]
step_db = 2
min_db = -20
max_db = 6
initial_db = -6
state_file = "/tmp/vol"
"""
    )
    assert load_config(path) == ApplianceConfig(
        listen=ListenSection(
            port=6000, bind="127.0.0.1", buffer_ms=100, timeout_s=2.0, device="USB Audio",
            max_buffer_s=30.5, name="kitchen", interfaces=("192.168.1.20",), autostart=False,
        ),
        gpio=GpioSection(
            enabled=True, listen_button=3, volume_up_button=22, volume_down_button=23,
            status_led=16, underrun_led=None, error_led=26, hold_time_s=5.0,
            shutdown_on_hold=True,
        ),
        volume=VolumeSection(
            step_db=2.0, min_db=-20.0, max_db=6.0, initial_db=-6.0, state_file=Path("/tmp/vol")
        ),
        source=path,
    )  # fmt: skip


def test_installed_template_is_all_defaults() -> None:
    assert parse_config(TEMPLATE.read_text(), "template") == ApplianceConfig()


def test_template_documents_the_defaults_in_code() -> None:
    # Uncommenting every "# key = value" line must change nothing: the file tells the truth.
    assert parse_config(uncommented(TEMPLATE.read_text()), "template") == ApplianceConfig()


def test_template_documents_every_key() -> None:
    documented: dict[str, set[str]] = {}
    section = ""
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif match := SETTING.match(line):
            documented.setdefault(section, set()).add(match.group(1))
    for name, kind in (("listen", ListenSection), ("gpio", GpioSection), ("volume", VolumeSection)):
        assert documented[name] == {f.name for f in dataclasses.fields(kind)}, name


def test_template_takes_the_installers_name_line() -> None:
    # deploy/install.sh --name kitchen replaces the first "name =" line, commented or not.
    lines = TEMPLATE.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if re.match(r"^[#\s]*name\s*=", line))
    lines[first] = 'name = "kitchen"'
    assert parse_config("\n".join(lines), "installed").listen.name == "kitchen"


def test_listen_defaults_match_the_listener() -> None:
    from appliance.listener.listener import ListenerConfig

    listener = ListenerConfig()
    assert ListenSection().listener_kwargs() == {
        key: getattr(listener, key) for key in ListenSection().listener_kwargs()
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[listen]\nprot = 5005\n",
            "unknown key [listen] prot",
        ),
        (
            "[gpoi]\n",
            "unknown section [gpoi]",
        ),
        (
            "listen = 1\n",
            "listen must be a section ([listen]), not a value",
        ),
        (
            '[listen]\nport = "5005"\n',
            "[listen] port must be an integer, not string",
        ),
        (
            "[listen]\nport = 5005.0\n",
            "[listen] port must be an integer, not float",
        ),
        (
            "[listen]\nautostart = 1\n",
            "[listen] autostart must be true or false, not integer",
        ),
        (
            "[listen]\ntimeout_s = true\n",
            "[listen] timeout_s must be a number, not boolean",
        ),
        (
            "[listen]\ninterfaces = [1]\n",
            "[listen] interfaces must be a list of strings, not array",
        ),
        (
            '[listen]\ninterfaces = "lo"\n',
            "[listen] interfaces must be a list of strings, not string",
        ),
        (
            "[gpio]\nlisten_button = true\n",
            "[gpio] listen_button must be a BCM pin number (integer) or false, not boolean",
        ),
        (
            '[gpio]\nlisten_button = "GPIO17"\n',
            "[gpio] listen_button must be a BCM pin number (integer) or false, not string",
        ),
        (
            '[gpio]\nshutdown_on_hold = "yes"\n',
            '[gpio] shutdown_on_hold must be true, false or "auto", not string',
        ),
        (
            "[volume]\nstate_file = 1\n",
            '[volume] state_file must be a path (string; "" = automatic), not integer',
        ),
        (
            "[gpio]\nlisten_button = 40\n",
            "[gpio] listen_button = 40 is not a usable GPIO: use a BCM number from 2 to 27",
        ),
        (
            "[gpio]\nerror_led = 1\n",
            "[gpio] error_led = 1 is not a usable GPIO: use a BCM number from 2 to 27",
        ),
        (
            "[gpio]\nvolume_up_button = 5\n",
            "[gpio] BCM 5 is used twice: volume_up_button and status_led",
        ),
        (
            "[gpio]\nerror_led = 17\n",
            "[gpio] BCM 17 is used twice: listen_button and error_led",
        ),
        (
            "[gpio]\nhold_time_s = 0\n",
            "[gpio] hold_time_s must be more than 0",
        ),
        (
            "[listen]\nport = 70000\n",
            "[listen] port must be 0 to 65535, not 70000",
        ),
        (
            "[listen]\nbuffer_ms = 10\n",
            "[listen] buffer_ms must be at least 20 (one packet)",
        ),
        (
            "[listen]\ntimeout_s = 0\n",
            "[listen] timeout_s must be more than 0",
        ),
        (
            "[listen]\nperiod_ms = 200\n",
            "[listen] period_ms must be from 5 to 100, not 200",
        ),
        (
            '[listen]\npayload_map = ["96=L24/48000/2"]\n',
            "[listen] payload map '96=L24/48000/2': unknown encoding 'L24' "
            "(known: L16, PCMA, PCMU)",
        ),
        (
            '[listen]\npayload_map = ["8=L16/48000/2"]\n',
            "[listen] payload map '8=L16/48000/2': payload type 8 is not dynamic (96-127)",
        ),
        (
            "[listen]\nmax_buffer_s = 0.01\n",
            "[listen] max_buffer_s must hold at least buffer_ms of audio",
        ),
        (
            "[volume]\nstep_db = 0\n",
            "[volume] step_db must be more than 0",
        ),
        (
            "[volume]\ninitial_db = 20\n",
            "[volume] needs min_db <= initial_db <= max_db, got -30.0 / 20.0 / 12.0",
        ),
    ],
)
def test_bad_values_name_the_key(text: str, message: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_config(text, "f.toml")
    assert str(error.value) == f"f.toml: {message}"


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[listen]\nport = \n")
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: invalid TOML: Invalid value (at line 2, column 8)"


def test_empty_strings_mean_automatic() -> None:
    config = parse_config('[listen]\ndevice = ""\nname = ""\n[volume]\nstate_file = ""\n')
    assert (config.listen.device, config.listen.name, config.volume.state_file) == (None,) * 3


def parse_flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    # The listen command's own flags, as the lead defines them (default None = not given).
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None)
    return parser.parse_args(argv)


def test_no_flags_leave_the_file_alone() -> None:
    config = ApplianceConfig(listen=ListenSection(port=6000))
    assert apply_overrides(config, parse_flags()) is config


def test_flags_override_the_file() -> None:
    args = parse_flags(
        "--config", "/x.toml", "--no-gpio", "--listen-pin", "27", "--no-shutdown-on-hold",
        "--no-autostart", "--volume-state-file", "/tmp/v", "--port", "7000", "--timeout", "9",
    )  # fmt: skip
    assert args.config == Path("/x.toml")
    assert apply_overrides(ApplianceConfig(), args) == ApplianceConfig(
        listen=ListenSection(port=7000, timeout_s=9.0, autostart=False),
        gpio=GpioSection(enabled=False, listen_button=27, shutdown_on_hold=False),
        volume=VolumeSection(state_file=Path("/tmp/v")),
    )


def test_a_flag_that_clashes_is_refused() -> None:
    with pytest.raises(UsageError) as error:
        apply_overrides(ApplianceConfig(), parse_flags("--listen-pin", "13"))
    assert str(error.value) == (
        "command line: [gpio] BCM 13 is used twice: listen_button and error_led"
    )


def test_shutdown_on_hold_auto_follows_systemd() -> None:
    assert resolve_shutdown_on_hold("auto", {"INVOCATION_ID": "0c1f"}) is True
    assert resolve_shutdown_on_hold("auto", {"HOME": "/root"}) is False
    assert resolve_shutdown_on_hold(False, {"INVOCATION_ID": "0c1f"}) is False
    assert resolve_shutdown_on_hold(True, {}) is True


def test_state_file_location() -> None:
    section = VolumeSection()
    assert section.resolved_state_file({}) == Path("/var/lib/appliance/volume")
    assert section.resolved_state_file({"STATE_DIRECTORY": "/var/lib/appliance"}) == Path(
        "/var/lib/appliance/volume"
    )
    assert section.resolved_state_file({"STATE_DIRECTORY": "/s/one:/s/two"}) == Path(
        "/s/one/volume"
    )
    explicit = VolumeSection(state_file=Path("/tmp/v"))
    assert explicit.resolved_state_file({"STATE_DIRECTORY": "/s"}) == Path("/tmp/v")


def test_autostart() -> None:
    quiet = ApplianceConfig(listen=ListenSection(autostart=False))
    assert should_autostart(quiet, has_listen_button=True) is False
    assert should_autostart(quiet, has_listen_button=False) is True  # nothing else could start it
    assert should_autostart(ApplianceConfig(), has_listen_button=True) is True
