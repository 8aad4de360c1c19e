"""deploy/customize-image on synthetic Raspberry-Pi-OS-shaped images (no root, no mounts).

The images are built like the real ones: an MBR with a FAT32 (0x0c) boot partition at sector
8192 and a Linux (0x83) ext4 root after it. "Bookworm" has no cloud-init files on the boot
partition, "Trixie" has user-data/meta-data/network-config. FAT goes through mtools.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "customize-image"
SECTOR = 512
BOOT_START = 8192
BOOT_SECTORS = 131072  # 64 MiB
ROOT_START = BOOT_START + BOOT_SECTORS
ROOT_SECTORS = 40960  # 20 MiB
IMAGE_BYTES = (ROOT_START + ROOT_SECTORS + 2048) * SECTOR
BOOT_OFFSET = BOOT_START * SECTOR
ROOT_OFFSET = ROOT_START * SECTOR
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")
CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
    "fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
)
IMAGER_CMDLINE_TAIL = (
    " systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot "
    "systemd.unit=kernel-command-line.target"
)
TRIXIE_USER_DATA = "#cloud-config\n# Set by Raspberry Pi Imager\nhostname: raspberrypi\n"
TRIXIE_NETWORK_CONFIG = "# network: {config: disabled}\n"
# IEEE 802.11i-2004 annex H.4 test vector: passphrase "password", SSID "IEEE".
IEEE_PSK = "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
PLACEHOLDER_TOML = '# placeholder: deploy/appliance.toml is written by the config work\nname = ""\n'

TOOLS = ("sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mdir", "mmd", "fsck.vfat", "e2fsck")
pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in TOOLS),
    reason=f"needs {', '.join(TOOLS)} (apt: fdisk dosfstools e2fsprogs mtools)",
)


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("customize_image", str(SCRIPT))
    spec = importlib.util.spec_from_loader("customize_image", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being made.
    sys.modules[spec.name] = module
    loader.exec_module(module)
    return module


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the files a checkout gives customize-image (its deploy/ and the package)."""
    root = tmp_path / "checkout"
    (root / "deploy").mkdir(parents=True)
    for name in ("customize-image", "install.sh", "appliance.service"):
        shutil.copy2(REPO / "deploy" / name, root / "deploy" / name)
    toml = REPO / "deploy" / "appliance.toml"
    if toml.is_file():
        shutil.copy2(toml, root / "deploy" / "appliance.toml")
    else:
        (root / "deploy" / "appliance.toml").write_text(PLACEHOLDER_TOML)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(
        REPO / "appliance", root / "appliance", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def make_image(directory: Path, boot_files: dict[str, str]) -> Path:
    image = directory / "raspios.img"
    with image.open("wb") as file:
        file.truncate(IMAGE_BYTES)
    table = (
        "label: dos\n"
        f"start={BOOT_START}, size={BOOT_SECTORS}, type=c\n"
        f"start={ROOT_START}, size={ROOT_SECTORS}, type=83\n"
    )
    subprocess.run(["sfdisk", "-q", str(image)], input=table, text=True, check=True)
    subprocess.run(
        ["mkfs.vfat", "-F", "32", "-s", "1", "-S", "512", "-n", "bootfs",
         "--offset", str(BOOT_START), str(image), str(BOOT_SECTORS // 2)],
        check=True, capture_output=True,
    )  # fmt: skip
    rootfs = directory / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(rootfs), "-E", f"offset={ROOT_OFFSET}",
         str(image), f"{ROOT_SECTORS // 2}k"],
        check=True, capture_output=True,
    )  # fmt: skip
    files = directory / "bootfiles"
    files.mkdir()
    for name, text in boot_files.items():
        (files / name).write_text(text)
        mtools("mcopy", image, str(files / name), f"::/{name}")
    return image


def mtools(tool: str, image: Path, *args: str) -> bytes:
    result = subprocess.run(
        [tool, "-i", f"{image}@@{BOOT_OFFSET}", *args],
        env=MTOOLS_ENV,
        capture_output=True,
        check=True,
    )
    return result.stdout


def read_boot(image: Path, name: str) -> str:
    return mtools("mcopy", image, "-n", f"::/{name}", "-").decode()


def boot_names(image: Path, directory: str = "") -> set[str]:
    listing = mtools("mdir", image, "-b", f"::/{directory}").decode().split()
    prefix = f"::/{directory}/" if directory else "::/"
    return {entry.removeprefix(prefix).rstrip("/") for entry in listing}


def bookworm_files() -> dict[str, str]:
    return {
        "config.txt": "dtparam=audio=on\narm_64bit=1\n",
        "cmdline.txt": CMDLINE,
        "kernel8.img": "not really a kernel\n",
        "start4.elf": "firmware\n",
    }


def trixie_files() -> dict[str, str]:
    return {
        **bookworm_files(),
        "user-data": TRIXIE_USER_DATA,
        "meta-data": "instance-id: rpios-image\n",
        "network-config": TRIXIE_NETWORK_CONFIG,
    }


def sha256_range(image: Path, start: int, size: int | None = None) -> str:
    with image.open("rb") as file:
        file.seek(start)
        return hashlib.sha256(file.read(size) if size is not None else file.read()).hexdigest()


def run(checkout: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checkout / "deploy" / "customize-image"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def boot_partition_is_clean(image: Path, scratch: Path) -> None:
    extracted = scratch / "boot.fat"
    with image.open("rb") as reader:
        reader.seek(BOOT_OFFSET)
        extracted.write_bytes(reader.read(BOOT_SECTORS * SECTOR))
    fsck = subprocess.run(["fsck.vfat", "-n", str(extracted)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout


def install_argv(package: str, name: str, boot: str) -> list[str]:
    return [
        "/bin/bash",
        f"{boot}/appliance/install.sh",
        "--source",
        f"{boot}/appliance/{package}",
        "--name",
        name,
    ]


PACKAGE = "appliance-0.1.0.tar.gz"


def test_bookworm_gets_firstrun(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, bookworm_files())
    root_before = sha256_range(image, ROOT_OFFSET)
    mbr_before = sha256_range(image, 0, BOOT_OFFSET)

    result = run(checkout, image, "--name", "kitchen")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"{image}: Raspberry Pi OS image, first boot by firstrun"
    )
    assert read_boot(image, "cmdline.txt") == CMDLINE.rstrip("\n") + IMAGER_CMDLINE_TAIL + "\n"
    assert boot_names(image, "appliance") == {
        "install.sh",
        "appliance.service",
        "appliance.toml",
        PACKAGE,
    }
    for name in ("install.sh", "appliance.service", "appliance.toml"):
        assert read_boot(image, f"appliance/{name}") == (checkout / "deploy" / name).read_text()
    firstrun = read_boot(image, "firstrun.sh")
    assert firstrun.startswith("#!/bin/bash\n")
    assert (
        "ExecStart=/bin/bash $BOOT/appliance/install.sh --source "
        f"$BOOT/appliance/{PACKAGE} --name kitchen\n"
    ) in firstrun
    assert firstrun.endswith(
        'rm -f "$BOOT/firstrun.sh"\nsed -i \'s| systemd.run.*||g\' "$BOOT/cmdline.txt"\nexit 0\n'
    )
    assert "user-data" not in boot_names(image)
    assert sha256_range(image, ROOT_OFFSET) == root_before
    assert sha256_range(image, 0, BOOT_OFFSET) == mbr_before
    boot_partition_is_clean(image, tmp_path)


def test_firstrun_script_is_valid_shell(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, bookworm_files())
    args = ["--wifi-ssid", "IEEE", "--wifi-passphrase", "password", "--wifi-country", "gb"]
    assert run(checkout, image, "--name", "Living Room", *args).returncode == 0
    script = tmp_path / "firstrun.sh"
    script.write_text(read_boot(image, "firstrun.sh"))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_bookworm_wifi(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, bookworm_files())
    args = ["--wifi-ssid", "IEEE", "--wifi-passphrase", "password", "--wifi-country", "gb"]

    result = run(checkout, image, "--name", "kitchen", *args)

    assert result.returncode == 0, result.stderr
    assert read_boot(image, "cmdline.txt") == (
        CMDLINE.rstrip("\n") + " cfg80211.ieee80211_regdom=GB" + IMAGER_CMDLINE_TAIL + "\n"
    )
    firstrun = read_boot(image, "firstrun.sh")
    assert f"imager_custom set_wlan IEEE {IEEE_PSK} GB\n" in firstrun
    assert f"psk={IEEE_PSK}\n" in firstrun
    assert "password" not in firstrun.replace("/etc/NetworkManager", "")


def test_rerun_replaces_its_own_hook(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, bookworm_files())
    assert run(checkout, image, "--name", "kitchen").returncode == 0
    first = read_boot(image, "cmdline.txt"), read_boot(image, "firstrun.sh")
    assert run(checkout, image, "--name", "kitchen").returncode == 0
    assert (read_boot(image, "cmdline.txt"), read_boot(image, "firstrun.sh")) == first


def test_trixie_gets_cloud_init(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, trixie_files())
    root_before = sha256_range(image, ROOT_OFFSET)

    result = run(checkout, image, "--name", "kitchen")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"{image}: Raspberry Pi OS image, first boot by cloud-init"
    )
    text = read_boot(image, "user-data")
    assert text.startswith("#cloud-config\n")
    user_data: dict[str, Any] = yaml.safe_load(text)
    assert user_data == {
        "hostname": "raspberrypi",
        "runcmd": [install_argv(PACKAGE, "kitchen", "/boot/firmware")],
    }
    assert read_boot(image, "network-config") == TRIXIE_NETWORK_CONFIG
    assert read_boot(image, "cmdline.txt") == CMDLINE
    assert "firstrun.sh" not in boot_names(image)
    assert sha256_range(image, ROOT_OFFSET) == root_before
    boot_partition_is_clean(image, tmp_path)
    # Customizing again leaves one runcmd, not two.
    assert run(checkout, image, "--name", "kitchen").returncode == 0
    assert read_boot(image, "user-data") == text


def test_trixie_wifi_network_config(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, trixie_files())
    args = ["--wifi-ssid", "IEEE", "--wifi-passphrase", "password", "--wifi-country", "GB"]

    assert run(checkout, image, "--name", "kitchen", *args).returncode == 0

    network = yaml.safe_load(read_boot(image, "network-config"))
    assert network == {
        "network": {
            "version": 2,
            "ethernets": {"eth0": {"dhcp4": True, "optional": True}},
            "wifis": {
                "renderer": "NetworkManager",
                "wlan0": {
                    "dhcp4": True,
                    "optional": True,
                    "regulatory-domain": "GB",
                    "access-points": {"IEEE": {"password": IEEE_PSK}},
                },
            },
        }
    }


def test_output_leaves_the_original_alone(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, trixie_files())
    before = sha256_range(image, 0)
    output = tmp_path / "kitchen.img"

    result = run(checkout, image, "--output", output, "--name", "kitchen")

    assert result.returncode == 0, result.stderr
    assert sha256_range(image, 0) == before
    assert "runcmd:" in read_boot(output, "user-data")
    assert not (tmp_path / "kitchen.img.partial").exists()
    assert sha256_range(output, ROOT_OFFSET) == sha256_range(image, ROOT_OFFSET)


def test_source_package_is_copied_as_given(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, trixie_files())
    wheel = tmp_path / "appliance-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))
    assert run(checkout, image, "--name", "kitchen", "--source", wheel).returncode == 0
    assert mtools("mcopy", image, "-n", f"::/appliance/{wheel.name}", "-") == wheel.read_bytes()
    runcmd = yaml.safe_load(read_boot(image, "user-data"))["runcmd"]
    assert runcmd == [install_argv(wheel.name, "kitchen", "/boot/firmware")]


def test_checkout_tarball_is_pip_installable_shape(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, bookworm_files())
    assert run(checkout, image, "--name", "kitchen").returncode == 0
    package = tmp_path / PACKAGE
    package.write_bytes(mtools("mcopy", image, "-n", f"::/appliance/{PACKAGE}", "-"))
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    assert "appliance-0.1.0/pyproject.toml" in names
    assert "appliance-0.1.0/appliance/__init__.py" in names
    assert "appliance-0.1.0/deploy/install.sh" in names
    assert not any("__pycache__" in name for name in names)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("no-mbr", "no MBR partition table"),
        ("types", "partitions are 0x83, 0x83; expected FAT32 (0x0c) then Linux (0x83)"),
        ("no-kernel", "the boot partition has no kernel*.img"),
        ("no-cmdline", "the boot partition has no cmdline.txt"),
        ("truncated", "a partition lies outside the image (truncated download?)"),
    ],
)
def test_unknown_images_are_refused(
    tmp_path: Path, checkout: Path, damage: str, reason: str
) -> None:
    files = bookworm_files()
    if damage == "no-kernel":
        del files["kernel8.img"]
    if damage == "no-cmdline":
        del files["cmdline.txt"]
    image = make_image(tmp_path, files)
    if damage == "no-mbr":
        with image.open("r+b") as file:
            file.write(bytes(SECTOR))
    if damage == "types":
        subprocess.run(["sfdisk", "-q", "--part-type", str(image), "1", "83"], check=True)
    if damage == "truncated":
        with image.open("r+b") as file:
            file.truncate(ROOT_OFFSET + SECTOR)
    before = sha256_range(image, 0)

    result = run(checkout, image, "--name", "kitchen")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"customize-image: error: {image}: not a Raspberry Pi OS image: {reason}\n"
    )
    assert sha256_range(image, 0) == before


def test_bad_wifi_options_are_usage_errors(tmp_path: Path, checkout: Path) -> None:
    image = make_image(tmp_path, bookworm_files())
    result = run(checkout, image, "--name", "kitchen", "--wifi-ssid", "Net")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "customize-image: error: Wi-Fi needs all of --wifi-ssid, --wifi-passphrase and "
        "--wifi-country\n"
    )


def test_psk_matches_the_ieee_vector() -> None:
    module = load_script()
    assert module.Wifi("IEEE", "password", "GB").psk == IEEE_PSK
