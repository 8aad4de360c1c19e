#!/usr/bin/env bash
# Sets up a development (or CI) machine for this repository: Debian 12, Ubuntu or Raspberry
# Pi OS. Idempotent: run it again at any time.
#
#   1. apt: installs the system packages below that are missing (as root, or through sudo).
#   2. .venv in the repository root, made with Python >= 3.11.
#   3. pip install -e '.[test,audio]' into it (PyAudio is built from source: needs step 1).
#
# Usage:  bash deploy/setup-dev.sh
# Env:    SETUP_SKIP_APT=1  skip step 1 (packages installed some other way).
#
# pip may warn about /opt/pypi-more on some machines: harmless.
set -euo pipefail

# System packages, by what needs them.
APT_PACKAGES=(
    # build: PyAudio has no Linux wheel; it compiles against PortAudio.
    portaudio19-dev python3-venv python3-dev gcc
    # audio rig: a private PulseAudio null sink as the test sound card (tests/audio_rig.py).
    pulseaudio pulseaudio-utils libasound2-plugins
    # mDNS interop: the tests check python-zeroconf against avahi on a private D-Bus.
    avahi-daemon avahi-utils dbus iproute2
    # RTP interop: real peers send ffmpeg's and GStreamer's RTP to the listener, and the
    # benchmark compares it with GStreamer's receiver (pulsesink).
    ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-pulseaudio
    # SRTP interop: GStreamer's srtpenc/srtpdec (tests/sender/test_srtp_interop.py).
    gstreamer1.0-plugins-bad
    # an output that refuses rates (the listener converts): ALSA's jack PCM on a private
    # JACK server, recorded through PulseAudio's JACK source (tests/audio_rig.py).
    jackd2 pulseaudio-module-jack
    # deploy tests: shell scripts, systemd units, Pi-shaped images and root filesystems.
    shellcheck systemd mtools dosfstools e2fsprogs fdisk debootstrap systemd-container
)

MIN_PYTHON_MINOR=11 # Python 3.11 or newer
PYTHON_CANDIDATES=(python3 python3.13 python3.12 python3.11)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"

say() { printf 'setup-dev: %s\n' "$*"; }
die() {
    printf 'setup-dev: error: %s\n' "$*" >&2
    exit 1
}

missing_packages() {
    local package
    for package in "${APT_PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
            printf '%s\n' "$package"
        fi
    done
}

install_packages() {
    if [[ "${SETUP_SKIP_APT:-0}" == "1" ]]; then
        say "SETUP_SKIP_APT=1: not installing system packages"
        return
    fi
    if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
        say "no apt-get here: install the equivalents of these yourself: ${APT_PACKAGES[*]}"
        return
    fi
    local -a missing sudo=()
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        say "system packages: all ${#APT_PACKAGES[@]} present"
        return
    fi
    if [[ "$(id -u)" != "0" ]]; then
        command -v sudo >/dev/null ||
            die "not root and no sudo: install these packages as root: ${missing[*]}"
        sudo=(sudo)
    fi
    say "installing ${#missing[@]} system packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -qq install -y --no-install-recommends "${missing[@]}" >/dev/null
}

# Succeeds when "$1" runs and is Python >= 3.$MIN_PYTHON_MINOR.
python_is_recent() {
    "$1" -c "import sys; sys.exit(sys.version_info < (3, $MIN_PYTHON_MINOR))" 2>/dev/null
}

find_python() {
    local candidate
    for candidate in "${PYTHON_CANDIDATES[@]}"; do
        if command -v "$candidate" >/dev/null && python_is_recent "$candidate"; then
            command -v "$candidate"
            return
        fi
    done
    local found="none"
    if command -v python3 >/dev/null; then
        found="$(python3 --version 2>&1)"
    fi
    die "need Python 3.$MIN_PYTHON_MINOR or newer (python3 here: $found); install python3.$MIN_PYTHON_MINOR or later"
}

make_venv() {
    if [[ -x "$venv/bin/python" ]] && python_is_recent "$venv/bin/python"; then
        say "virtualenv: reusing $venv ($("$venv/bin/python" --version 2>&1))"
        return
    fi
    local python
    python="$(find_python)"
    say "virtualenv: creating $venv with $python ($("$python" --version 2>&1))"
    rm -rf "$venv"
    "$python" -m venv "$venv" ||
        die "could not create $venv: on Debian install python3-venv (apt-get install python3-venv)"
}

install_project() {
    say "pip: installing this project with its test tools and PyAudio (pip install -e '.[test,audio]')"
    "$venv/bin/python" -m pip install -qq --upgrade pip
    "$venv/bin/python" -m pip install -qq -e "${repo_root}[test,audio]"
}

install_packages
make_venv
install_project
say "done: run the tests with .venv/bin/python -m pytest"
