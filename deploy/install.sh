#!/bin/bash
# Install the appliance listener on Raspberry Pi OS (Lite) Bookworm or Trixie, 64 or 32 bit.
#
#   sudo deploy/install.sh                      # from a checkout: installs that checkout
#   sudo deploy/install.sh --source dist/appliance-0.1.0.tar.gz
#   sudo deploy/install.sh --name kitchen       # advertised name, when writing a new config
#   sudo deploy/install.sh --no-start           # image builds: enable, do not start
#   sudo deploy/install.sh --uninstall          # remove it all, keep /etc/appliance
#
# Running it twice changes nothing: each step checks first and says "already ...".
# Besides the service it writes a polkit rule (when polkitd is installed, as on Raspberry Pi
# OS) that lets the service user power the Pi off: a long press of the listen button.
# apt needs the network (unless every package is already there); so does pip for the Python
# dependencies that Raspberry Pi OS does not ship (zeroconf).
set -euo pipefail

readonly PREFIX=/opt/appliance
readonly VENV=$PREFIX/venv
readonly SOURCE_STAMP=$PREFIX/installed-source.sha256
readonly CONFIG_DIR=/etc/appliance
readonly CONFIG=$CONFIG_DIR/appliance.toml
readonly STATE_DIR=/var/lib/appliance
readonly UNIT_NAME=appliance.service
readonly UNIT_PATH=/etc/systemd/system/$UNIT_NAME
readonly WIFI_UNIT_NAME=appliance-wifi-powersave.service
readonly WIFI_UNIT_PATH=/etc/systemd/system/$WIFI_UNIT_NAME
readonly NM_CONF_DIR=/etc/NetworkManager/conf.d
readonly NM_POWERSAVE=$NM_CONF_DIR/90-appliance-wifi-powersave.conf
readonly POLKIT_RULE=/etc/polkit-1/rules.d/50-appliance-poweroff.rules
readonly SERVICE_USER=appliance
readonly SERVICE_GROUPS=(audio gpio)

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly DEPLOY_DIR

NAME=""
SOURCE=""
START=yes
UNINSTALL=no
CHANGED=no
APT_UPDATED=no

say() { printf 'appliance install: %s\n' "$*"; }
changed() { CHANGED=yes; say "$*"; }
die() { printf 'appliance install: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --name) [ $# -ge 2 ] || die "--name needs a value"; NAME=$2; shift 2 ;;
            --name=*) NAME=${1#--name=}; shift ;;
            --source) [ $# -ge 2 ] || die "--source needs a path"; SOURCE=$2; shift 2 ;;
            --source=*) SOURCE=${1#--source=}; shift ;;
            --no-start) START=no; shift ;;
            --uninstall) UNINSTALL=yes; shift ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option: $1 (see --help)" ;;
        esac
    done
    if [ -z "$SOURCE" ]; then
        SOURCE=$(dirname "$DEPLOY_DIR")
    fi
    [ -e "$SOURCE" ] || die "no such source: $SOURCE"
    SOURCE=$(realpath "$SOURCE")
    if [ -d "$SOURCE" ] && [ ! -f "$SOURCE/pyproject.toml" ]; then
        die "$SOURCE is not a checkout of the appliance (no pyproject.toml)"
    fi
}

systemd_running() { [ -d /run/systemd/system ]; }

# --- packages -----------------------------------------------------------------------------

package_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

package_available() {
    apt-cache show "$1" >/dev/null 2>&1
}

apt_install() {
    local missing=() package
    for package in "$@"; do
        if package_installed "$package"; then
            say "already installed: $package"
        else
            missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$APT_UPDATED" = no ]; then
        apt-get update -q
        APT_UPDATED=yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    changed "installed: ${missing[*]}"
}

install_packages() {
    # numpy from the distribution: no wheel to download or build on a Pi Zero.
    local packages=(python3 python3-venv python3-numpy libportaudio2 alsa-utils)
    # PyAudio from Raspberry Pi OS if it has it (nothing to compile), else build it with pip.
    if package_installed python3-pyaudio || package_available python3-pyaudio; then
        packages+=(python3-pyaudio)
    else
        packages+=(portaudio19-dev gcc python3-dev)
    fi
    # gpiozero and its Pi 5 pin factory come from Raspberry Pi OS when it has them: the venv
    # sees them through --system-site-packages. So does PyAV (the sender's decoder; pip
    # fetches a wheel instead when the distribution's is older than pyproject.toml asks).
    local optional
    for optional in python3-gpiozero python3-lgpio python3-av; do
        if package_installed "$optional" || package_available "$optional"; then
            packages+=("$optional")
        else
            say "not available here, skipped: $optional"
        fi
    done
    apt_install "${packages[@]}"
}

# --- user and groups ----------------------------------------------------------------------

install_user() {
    local group
    # Off a Pi (or on a minimal image) there is no gpio group: create it so the unit's
    # SupplementaryGroups= resolves. On a Pi, udev gives it /dev/gpiochip* and /dev/gpiomem.
    for group in "${SERVICE_GROUPS[@]}"; do
        if getent group "$group" >/dev/null; then
            say "already present: group $group"
        else
            groupadd --system "$group"
            changed "created group $group"
        fi
    done
    if getent passwd "$SERVICE_USER" >/dev/null; then
        say "already present: user $SERVICE_USER"
    else
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "network audio listener" "$SERVICE_USER"
        changed "created system user $SERVICE_USER"
    fi
    for group in "${SERVICE_GROUPS[@]}"; do
        if id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$group"; then
            say "already in group $group: $SERVICE_USER"
        else
            usermod -a -G "$group" "$SERVICE_USER"
            changed "added $SERVICE_USER to group $group"
        fi
    done
}

# --- the Python package -------------------------------------------------------------------

source_digest() {
    if [ -d "$SOURCE" ]; then
        local entries=() entry
        for entry in pyproject.toml README.md appliance; do
            [ -e "$SOURCE/$entry" ] && entries+=("$entry")
        done
        (cd "$SOURCE" && find "${entries[@]}" -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
    else
        sha256sum "$SOURCE" | cut -d' ' -f1
    fi
}

install_venv() {
    if [ -x "$VENV/bin/python" ]; then
        say "already present: $VENV"
    else
        mkdir -p "$PREFIX"
        # System site packages: Raspberry Pi OS's gpiozero, lgpio and pyaudio are used as is.
        python3 -m venv --system-site-packages "$VENV"
        changed "created $VENV"
    fi
    local digest
    digest=$(source_digest)
    if [ -f "$SOURCE_STAMP" ] && [ "$(cat "$SOURCE_STAMP")" = "$digest" ] \
        && [ -x "$VENV/bin/appliance" ]; then
        say "already installed: appliance from $SOURCE"
        return 0
    fi
    local target=$SOURCE build=""
    if [ -d "$SOURCE" ]; then
        # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
        build=$(mktemp -d)
        tar -C "$SOURCE" --exclude=.git --exclude=build --exclude='*.egg-info' \
            --exclude=__pycache__ --exclude=.venv -cf - . | tar -C "$build" -xf -
        target=$build
    fi
    # The audio extra: PyAudio, the listener's player (python3-pyaudio when apt had it).
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
        "${target}[audio]"
    if [ -n "$build" ]; then
        rm -rf "$build"
    fi
    if [ -f "$SOURCE/README.md" ]; then
        install -m 0644 "$SOURCE/README.md" "$PREFIX/README.md"
    fi
    printf '%s\n' "$digest" >"$SOURCE_STAMP"
    changed "installed appliance from $SOURCE into $VENV"
}

# --- configuration ------------------------------------------------------------------------

install_config() {
    if [ -f "$CONFIG" ]; then
        say "already present, kept as is: $CONFIG"
        if [ -n "$NAME" ] && [ "$NAME" != "$(configured_name)" ]; then
            say "note: --name $NAME ignored; edit 'name' in $CONFIG to rename"
        fi
        return 0
    fi
    local template=$DEPLOY_DIR/appliance.toml
    [ -f "$template" ] || die "no configuration template at $template"
    install -d -m 0755 "$CONFIG_DIR"
    if [ -n "$NAME" ]; then
        # First 'name =' line (commented out or not) becomes the chosen name.
        local escaped=${NAME//\\/\\\\}
        escaped=${escaped//\"/\\\"}
        awk -v line="name = \"$escaped\"" '
            !done && /^[#[:space:]]*name[[:space:]]*=/ { print line; done = 1; next }
            { print }
            END { if (!done) print line }' "$template" >"$CONFIG.new"
        chmod 0644 "$CONFIG.new"
        mv "$CONFIG.new" "$CONFIG"
    else
        install -m 0644 "$template" "$CONFIG"
    fi
    changed "wrote $CONFIG"
}

configured_name() {
    [ -f "$CONFIG" ] || return 0
    sed -n 's/^[[:space:]]*name[[:space:]]*=[[:space:]]*"\(.*\)".*$/\1/p' "$CONFIG" | head -n 1
}

advertised_name() {
    local name
    name=$(configured_name)
    if [ -z "$name" ]; then
        name=$(hostname 2>/dev/null || cat /etc/hostname)
    fi
    printf '%s\n' "$name"
}

# --- systemd units ------------------------------------------------------------------------

install_file() {  # install_file SOURCE DEST MODE: copy when different, say which
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        say "already up to date: $2"
        return 1
    fi
    install -D -m "$3" "$1" "$2"
    changed "installed $2"
    return 0
}

enable_unit() {
    if systemctl is-enabled --quiet "$1" 2>/dev/null; then
        say "already enabled: $1"
    else
        systemctl enable --quiet "$1"
        changed "enabled $1"
    fi
}

install_units() {
    local unit_changed=no
    if install_file "$DEPLOY_DIR/$UNIT_NAME" "$UNIT_PATH" 0644; then
        unit_changed=yes
    fi
    if [ "$unit_changed" = yes ] && systemd_running; then
        systemctl daemon-reload
    fi
    enable_unit "$UNIT_NAME"
}

wifi_interfaces() {
    local dev
    for dev in /sys/class/net/*; do
        [ -d "$dev/wireless" ] && basename "$dev"
    done
    return 0
}

wifi_powersave_unit() {
    local iw_path=$1 dev
    printf '[Unit]\nDescription=Turn off Wi-Fi power saving (audio drop-outs)\n'
    printf 'After=sys-subsystem-net-devices-%s.device\n\n' "$2"
    printf '[Service]\nType=oneshot\n'
    for dev in "${@:2}"; do
        printf 'ExecStart=-%s dev %s set power_save off\n' "$iw_path" "$dev"
    done
    printf '\n[Install]\nWantedBy=multi-user.target\n'
}

install_wifi_powersave() {
    # Power saving on the Pi's Wi-Fi delays incoming packets by up to ~100 ms: stutters.
    if [ -d /etc/NetworkManager ]; then
        local conf
        conf=$(mktemp)
        printf '# Written by the appliance installer: no Wi-Fi power saving.\n' >"$conf"
        printf '[connection]\nwifi.powersave = 2\n' >>"$conf"
        install_file "$conf" "$NM_POWERSAVE" 0644 || true
        rm -f "$conf"
        return 0
    fi
    local iw_path devices
    iw_path=$(command -v iw || true)
    mapfile -t devices < <(wifi_interfaces)
    if [ -z "$iw_path" ] || [ ${#devices[@]} -eq 0 ]; then
        say "no NetworkManager and no iw/Wi-Fi interface: Wi-Fi power saving left alone"
        return 0
    fi
    local unit
    unit=$(mktemp)
    wifi_powersave_unit "$iw_path" "${devices[@]}" >"$unit"
    if install_file "$unit" "$WIFI_UNIT_PATH" 0644 && systemd_running; then
        systemctl daemon-reload
    fi
    rm -f "$unit"
    enable_unit "$WIFI_UNIT_NAME"
}

# --- power-off permission ----------------------------------------------------------------

polkit_rule() {
    cat <<EOF
// Written by the appliance installer (deploy/install.sh); removed by its --uninstall.
// A long press of the listen button runs "systemctl poweroff" as user $SERVICE_USER, which is
// no administrator: logind asks polkit, and this rule says yes (to powering off only).
polkit.addRule(function (action, subject) {
    if ((action.id == "org.freedesktop.login1.power-off" ||
         action.id == "org.freedesktop.login1.power-off-multiple-sessions") &&
        subject.user == "$SERVICE_USER") {
        return polkit.Result.YES;
    }
});
EOF
}

install_polkit_rule() {
    # JavaScript rules are read by polkitd (Debian/Raspberry Pi OS Bookworm and later; the
    # older policykit-1 ignores them). polkitd notices new rules by itself: no restart.
    if ! package_installed polkitd; then
        say "polkitd is not installed: a long press of the listen button cannot power off" \
            "(sudo apt install polkitd, then run this again)"
        return 0
    fi
    local rule
    rule=$(mktemp)
    polkit_rule >"$rule"
    install_file "$rule" "$POLKIT_RULE" 0644 || true
    rm -f "$rule"
}

start_service() {
    if [ "$START" = no ]; then
        say "not started (--no-start): it starts at the next boot"
        return 0
    fi
    if ! systemd_running; then
        say "systemd is not running here: $UNIT_NAME starts at the next boot"
        return 0
    fi
    if [ "$CHANGED" = yes ]; then
        systemctl restart "$UNIT_NAME"
        say "(re)started $UNIT_NAME"
    elif systemctl is-active --quiet "$UNIT_NAME"; then
        say "already running: $UNIT_NAME"
    else
        systemctl start "$UNIT_NAME"
        say "started $UNIT_NAME"
    fi
}

# --- uninstall ----------------------------------------------------------------------------

remove_path() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        rm -rf "$1"
        say "removed $1"
    else
        say "already absent: $1"
    fi
}

uninstall() {
    local unit
    for unit in "$UNIT_NAME" "$WIFI_UNIT_NAME"; do
        if systemd_running; then
            systemctl stop "$unit" 2>/dev/null || true
        fi
        if [ -f "/etc/systemd/system/$unit" ]; then
            systemctl disable --quiet "$unit" 2>/dev/null || true
        fi
    done
    remove_path "$UNIT_PATH"
    remove_path "$WIFI_UNIT_PATH"
    remove_path "$NM_POWERSAVE"
    remove_path "$POLKIT_RULE"
    if systemd_running; then
        systemctl daemon-reload
    fi
    remove_path "$PREFIX"
    remove_path "$STATE_DIR"
    if getent passwd "$SERVICE_USER" >/dev/null; then
        userdel "$SERVICE_USER"
        say "removed user $SERVICE_USER"
    else
        say "already absent: user $SERVICE_USER"
    fi
    # apt packages and the gpio group stay: other software may use them.
    say "kept $CONFIG_DIR (delete it by hand to forget the settings)"
}

main() {
    parse_args "$@"
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
    if [ "$UNINSTALL" = yes ]; then
        uninstall
        return 0
    fi
    install_packages
    install_user
    install_venv
    install_config
    install_units
    install_wifi_powersave
    install_polkit_rule
    start_service
    if [ "$CHANGED" = no ]; then
        say "already installed: nothing changed"
    fi
    say "advertised name: $(advertised_name)"
}

main "$@"
