# `earshot flash`: put MicroPython on a board with esptool's Python API. Connect (over USB
# esptool resets the board into download mode itself), detect the chip, check the image is
# a MicroPython build that boots on that chip, erase, write it at the chip's bootloader
# offset, verify, reset. The image is --firmware PATH, or the official build of --version X
# from micropython.org, kept in ~/.cache/earshot/firmware. esptool prints its own progress;
# a failure becomes one line that says what to do.
import argparse
import hashlib
import os
import re
from pathlib import Path

from host_tools import serial_port
from host_tools.errors import CommandError

ROM_BAUD = 115200   # the ROM loader's speed, and the only one over socket:// (no real UART there)
FAST_BAUD = 460800
CONNECT_ATTEMPTS = 4  # one pass through esptool's four reset strategies (its default is 7)
FIRMWARE_URL = "https://micropython.org"  # EARSHOT_FIRMWARE_URL overrides it (tests serve files locally)
BOARDS = {"ESP32": ("ESP32_GENERIC", "esp32"), "ESP32-S3": ("ESP32_GENERIC_S3", "esp32s3")}  # -> build, chip
BOOT_STEPS = "hold BOOT, tap EN (reset), release BOOT, then run again"
_VERSION = re.compile(r"v?(\d+\.\d+\.\d+)")


def add_arguments(parser):
    parser.add_argument("--port", help="serial port, pty path or pyserial URL (socket://HOST:PORT); "
                                       "default: the one ESP32 board on USB")
    parser.add_argument("--chip", choices=["auto", "esp32", "esp32s3"], default="auto", help="default: detect it")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--firmware", metavar="PATH", help="a MicroPython .bin: the full build from "
                        "micropython.org/download, e.g. ESP32_GENERIC-...-v1.28.0.bin")
    source.add_argument("--version", metavar="X", help="fetch the official MicroPython build X (e.g. v1.28.0) "
                                                       "for the board's chip from micropython.org")
    parser.add_argument("--no-stub", action="store_true",
                        help="talk to the chip's ROM loader only, without esptool's flasher stub (slower, no erase)")
    parser.add_argument("--erase", action=argparse.BooleanOptionalAction, default=None,
                        help="erase the whole flash first, the filesystem too (default: yes; not possible "
                             "with --no-stub)")
    parser.add_argument("--baud", type=int, help=f"default {FAST_BAUD}; {ROM_BAUD} on socket://")


def run(args):
    from esptool.util import FatalError

    if args.erase and args.no_stub:
        raise CommandError("--erase needs esptool's stub (the ROM loader cannot erase the whole chip): "
                           "drop --no-stub, or --no-erase")
    image = _read_firmware(Path(args.firmware)) if args.firmware else None  # checked before the board
    port = args.port or serial_port.find_port()
    esp = None
    try:
        esp = _connect(port, args.chip)
        return _flash(esp, port, args, image)
    except (FatalError, OSError, ValueError) as e:  # ValueError: a URL pyserial does not know
        raise CommandError(_explain(e, port))
    finally:
        if esp is not None:
            esp._port.close()


def _flash(esp, port, args, image):
    from esptool import cmds

    if esp.CHIP_NAME not in BOARDS:
        raise CommandError(f"the board is an {esp.CHIP_NAME}: earshot flashes ESP32 and ESP32-S3 boards")
    version = args.version and _version(args.version)
    path, data = image or fetch_firmware(version, esp.CHIP_NAME)
    esp = _loader(esp, port, args)
    app = check_image(data, path, esp.CHIP_NAME, _flash_bytes(esp))  # before anything is written
    offset = esp.BOOTLOADER_FLASH_OFFSET
    _erase(esp, args.erase)
    cmds.write_flash(esp, [(offset, str(path))])
    cmds.verify_flash(esp, [(offset, str(path))])
    mac = ":".join(f"{b:02x}" for b in esp.read_mac())
    _reset(esp, port)
    version = app.get("version") or version or "(version not in the image)"
    print(f"earshot flash: MicroPython {version} written to {esp.CHIP_NAME} (MAC {mac}) at {offset:#x}, "
          f"{len(data)} bytes, verified")
    return 0


def _loader(esp, port, args):
    # The stub (unless --no-stub), the working baud rate, the flash chip attached.
    from esptool import cmds

    if not args.no_stub:
        esp = cmds.run_stub(esp)
    baud = args.baud or (ROM_BAUD if "://" in port else FAST_BAUD)
    if baud != ROM_BAUD:
        esp.change_baud(baud)
    cmds.attach_flash(esp)
    return esp


def _connect(port, chip):
    from esptool.cmds import connect_esp

    # A pty has no DTR/RTS to pull the board into download mode (socket:// esptool skips itself).
    before = "no-reset" if serial_port.is_pty(port) else "default-reset"
    return connect_esp(port=port, chip=chip, initial_baud=ROM_BAUD, before=before,
                       connect_attempts=CONNECT_ATTEMPTS)


def _erase(esp, erase):
    from esptool.cmds import erase_flash

    if erase is False:
        return
    if esp.IS_STUB:
        erase_flash(esp)
    else:
        print(f"earshot flash: note: the {esp.CHIP_NAME} ROM loader cannot erase the whole chip (that needs "
              "esptool's stub, so not with --no-stub); writing erases only the sectors it writes")


def _reset(esp, port):
    # Leave download mode so MicroPython boots. Over USB esptool pulses EN through RTS, from
    # the ROM loader or the stub alike. socket:// and ptys have no RTS line: there the ROM's
    # "run user code" (esptool's soft reset, FLASH_BEGIN 0 + FLASH_END) does it, on a real
    # ESP32 as on the virtual board. The ESP32 stub cannot run user code (esptool soft-resets
    # from the stub only on the ESP8266), so it is first told to reboot into the ROM loader.
    from esptool.cmds import reset_chip
    from esptool.targets import CHIP_DEFS

    if serial_port.has_rts(port):
        reset_chip(esp, "hard-reset")
        return
    if esp.IS_STUB:
        esp.soft_reset(stay_in_bootloader=True)
        esp = next(c for c in CHIP_DEFS.values() if c.CHIP_NAME == esp.CHIP_NAME)(esp._port, ROM_BAUD)
        esp.connect("no-reset", CONNECT_ATTEMPTS, detecting=True, warnings=False)
    esp.soft_reset(stay_in_bootloader=False)


# --- the image ---------------------------------------------------------------------------

def _read_firmware(path):
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror}")
    if data[:1] != b"\xe9":
        start = data[:4].hex(" ") or "nothing"
        raise CommandError(f"{path} is not an ESP firmware image (it starts with {start}; an image starts with e9): "
                           "pass the .bin from https://micropython.org/download/ESP32_GENERIC/ (or ESP32_GENERIC_S3)")
    return path, data


def _flash_bytes(esp):
    # The board's flash size, from its JEDEC ID ("4MB" -> bytes); esptool's default if unknown.
    from esptool.cmds import detect_flash_size
    from esptool.util import flash_size_bytes

    return flash_size_bytes(detect_flash_size(esp) or "4MB")


def check_image(data, name, board_chip, flash_bytes=None):
    # The image must be for this chip and boot: the virtual board's ROM judges it as it would
    # at reset (esptool's image checks, the partition table, the app). -> the app's description.
    from host_tools.sim import bootloader, rom

    build, chip = BOARDS[board_chip]
    made_for = bootloader.chip_name(int.from_bytes(data[12:14], "little"))  # the image header's chip ID
    if made_for != board_chip:
        raise CommandError(f"this image is for {made_for}, the board is an {board_chip}: pass the {build} build")
    offset = rom.chip_info(chip).boot_offset
    size = flash_bytes or rom.FLASH_SIZE
    if offset + len(data) > size:
        raise CommandError(f"{name} is {len(data)} bytes: too big for the board's {size >> 20} MiB flash")
    boot = bootloader.boot_flash((b"\xff" * offset + data).ljust(size, b"\xff"), chip)
    if "Detected size" in boot.console:
        raise CommandError(f"{name} is built for more flash than the board's {size >> 20} MiB: pass the {build} "
                           "build for your board's flash (e.g. the FLASH_4M variant)")
    if not boot.ok:
        reason = boot.console.strip().splitlines()[-1]
        raise CommandError(f"{name} would not boot on the {board_chip} ({reason}): pass the full {build} build "
                           "from micropython.org, not the app-only .app-bin")
    return boot.app


def _version(text):
    m = _VERSION.fullmatch(text.strip())
    if not m:
        raise CommandError(f"--version wants a release like v1.28.0, not {text!r}")
    return "v" + m.group(1)


# --- official builds from micropython.org -------------------------------------------------
# micropython.org publishes no checksums for its builds (none found on the site or
# elsewhere), so a download is checked against its Content-Length and by esptool's image
# checks (each image's checksum and appended SHA-256, via check_image), and its SHA-256 is
# recorded next to it in the cache on first download: trust on first use, which only
# notices a cached file that changed later.

def fetch_firmware(version, chip_name):
    # -> (path in the cache, bytes) of MicroPython `version` for this chip ("ESP32").
    cache = _cache_dir()
    try:
        return _fetch(version, chip_name, cache)
    except OSError as e:  # the cache itself, not the board: say so, not a port hint
        raise CommandError(f"cannot use the firmware cache {cache} ({e.strerror or e}): make it writable, "
                           "or download the .bin yourself and pass --firmware PATH")


def _fetch(version, chip_name, cache):
    build = BOARDS[chip_name][0]
    for path in sorted(cache.glob(f"{build}-*-{version}.bin"), reverse=True):
        recorded = path.with_name(path.name + ".sha256")
        if recorded.is_file():
            return _cached(path, recorded)
    base = os.environ.get("EARSHOT_FIRMWARE_URL", FIRMWARE_URL).rstrip("/")
    page_url = f"{base}/download/{build}/"
    page = _download(page_url).decode("utf-8", "replace")
    dates = sorted(set(re.findall(rf"{build}-(\d{{8}})-{re.escape(version)}\.bin", page)))
    if not dates:
        found = sorted(set(re.findall(rf"{build}-\d{{8}}-(v\d+\.\d+\.\d+)\.bin", page)))
        raise CommandError(f"no MicroPython {version} build for {build} on {page_url} "
                           f"(releases there: {', '.join(found[-6:]) or 'none'})")
    name = f"{build}-{dates[-1]}-{version}.bin"
    url = f"{base}/resources/firmware/{name}"
    print(f"earshot flash: downloading {url}")
    data = _download(url)
    check_image(data, name, chip_name, 16 << 20)  # a damaged download is not cached (the board's fit comes later)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / name).write_bytes(data)
    (cache / (name + ".sha256")).write_text(hashlib.sha256(data).hexdigest() + "\n")
    return cache / name, data


def _cached(path, recorded):
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded.read_text().strip():
        raise CommandError(f"{path} changed since it was downloaded (its SHA-256 is not the one recorded then): "
                           "delete it and run again")
    print(f"earshot flash: using {path}")
    return path, data


def _cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "earshot" / "firmware"


def _download(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
            expected = response.headers.get("Content-Length")
    except urllib.error.HTTPError as e:
        raise CommandError(f"{url}: HTTP {e.code} {e.reason}")
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise CommandError(f"cannot reach micropython.org ({reason}): download the .bin yourself and pass "
                           "--firmware PATH")
    if expected is not None and len(data) != int(expected):
        raise CommandError(f"the download of {url} was cut short ({len(data)} of {expected} bytes): run again")
    return data


# --- what went wrong ---------------------------------------------------------------------

_HINTS = [  # (pattern in esptool's error, what to tell the user), after the port's own hints
    (r"This chip is ([\w-]+), not ([\w-]+)", "the board is an {0}, not an {1}: pass --chip auto"),
    (r"Failed to connect|No serial data|Wrong boot mode|Invalid head of packet",
     "no answer from a board in download mode on {port}: " + BOOT_STEPS),
]


def _explain(error, port):
    text = str(error)
    hint = serial_port.explain(error, port)
    if hint:
        return hint
    for pattern, hint in _HINTS:
        m = re.search(pattern, text)
        if m:
            return hint.format(*m.groups(), port=port)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"esptool: {first} (on {port}; if the board stopped answering: {BOOT_STEPS})"
