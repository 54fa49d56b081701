# The virtual board at reset: what the ESP32's ROM and ESP-IDF's second-stage bootloader
# print on the UART and whether an app boots, for the flash contents (the file the ROM
# loader in rom.py writes). Images are judged by esptool's own parser and checks.
import hashlib
import re
import struct
from collections import namedtuple
from pathlib import Path

from esptool.bin_image import LoadFirmwareImage
from esptool.cmds import _parse_app_info
from esptool.targets import ROM_LIST
from esptool.util import FatalError

from host_tools.sim.rom import FLASH_SIZE, chip_info

Boot = namedtuple("Boot", "ok console app")
PARTITION_TABLE = 0x8000
_FLASH_MODES = ["QIO", "QOUT", "DIO", "DOUT"]
_CLOCK_DIV = {0x0: 2, 0x1: 3, 0x2: 4, 0xF: 1}  # header frequency nibble: 40, 26, 20, 80 MHz
_BANNER = re.compile(rb"MicroPython (v\d+\.\d+\.\d+[\w.+-]*) on \d{4}-\d\d-\d\d")
_BOOT_MS = 63  # the bootloader's log timestamp: a typical value, the board does not model time here


class _NoBoot(Exception):
    """Boot stops here; the argument is what the board printed about it."""


def download_banner(chip="esp32"):
    # What the ROM prints when GPIO0 is low at reset: it waits for esptool.
    if chip == "esp32":
        return ("ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x3 "
                "(DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n")
    return ("ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x1 (POWERON),boot:0x0 "
            "(DOWNLOAD(USB/UART0))\r\nwaiting for download\r\n")


def boot_check(flash_path, chip="esp32"):
    # A missing flash file is a new board: its flash is erased.
    path = Path(flash_path)
    return boot_flash((path.read_bytes() if path.exists() else b"").ljust(FLASH_SIZE, b"\xff"), chip)


def boot_flash(flash, chip="esp32"):
    # What the board does at reset with these flash contents (bytes from address 0).
    # MicroPython's builds log the second-stage bootloader at warning level
    # (ports/esp32/boards/sdkconfig.base), so a good boot shows only the ROM's lines.
    info = chip_info(chip)
    console = info.rom_banner
    try:
        bootloader = _load_image(info, flash, info.boot_offset, "bootloader")
        console += _rom_load_lines(info, bootloader)
        _check_flash_size(bootloader, len(flash))
        kind, app_offset = _app_partition(flash)
        app = _load_image(info, flash, app_offset, kind)
    except _NoBoot as e:
        return Boot(False, console + e.args[0], {})
    return Boot(True, console, dict(_app_info(info, app), offset=app_offset))


def image_flash_size(image):
    # The flash size the build was made for, in bytes (the header's high nibble: 0 = 1 MiB).
    return (1 << 20) << (image.flash_size_freq >> 4)


def _check_flash_size(bootloader, size):
    # ESP-IDF's bootloader refuses a build made for more flash than the chip has.
    wanted = image_flash_size(bootloader)
    if wanted > size:
        _stop(_idf_error("spi_flash", f"Detected size({size >> 10}k) smaller than the size in the binary image "
                                      f"header({wanted >> 10}k). Probe failed."))


def _load_image(info, flash, offset, what):
    # what: "bootloader", or the app partition's kind ("factory", "ota_0", ...).
    if flash[offset] != 0xE9:
        if what == "bootloader":
            _stop(f"invalid header: {struct.unpack_from('<I', flash, offset)[0]:#010x}\r\n")
        _app_fault(what, f"image at {offset:#x} has invalid magic byte (nothing flashed here?)")
    try:
        image = LoadFirmwareImage(info.key, flash[offset:])
    except (FatalError, struct.error, RuntimeError) as e:
        _image_fault(what, offset, f"unreadable image ({e})")
    if image.checksum != image.calculate_checksum():
        _image_fault(what, offset, f"Checksum failed. Calculated {image.calculate_checksum():#x} "
                                   f"read {image.checksum:#x}")
    if image.append_digest and image.stored_digest != image.calc_digest:
        _image_fault(what, offset, "Image hash failed - image is corrupt")
    if image.chip_id != info.rom.IMAGE_CHIP_ID:
        if what == "bootloader":
            _stop(f"[virtual board: this second-stage bootloader is built for {chip_name(image.chip_id)}; "
                  f"the {info.name} cannot run it]\r\n")
        _app_fault(what, f"mismatch chip ID, expected {info.rom.IMAGE_CHIP_ID}, found {image.chip_id}", "boot_comm")
    return image


def _stop(console):
    raise _NoBoot(console)


def _image_fault(what, offset, fault):
    # The ROM's own messages for a broken second-stage bootloader are not modelled: say so.
    if what == "bootloader":
        _stop(f"[virtual board: the second-stage bootloader at {offset:#x} is broken: {fault}]\r\n")
    _app_fault(what, fault)


def _app_fault(kind, fault, tag="esp_image"):
    # As ESP-IDF's second-stage bootloader reports an app it cannot boot.
    kind = kind.capitalize() if kind == "factory" else kind
    _stop(_idf_error(tag, fault) + _idf_error("boot", f"{kind} app partition is not bootable")
          + _idf_error("boot", "No bootable app partitions in the partition table"))


def _idf_error(tag, text):
    return f"E ({_BOOT_MS}) {tag}: {text}\r\n"


def chip_name(chip_id):
    # An image header's chip ID -> esptool's chip name ("ESP32-S3").
    return next((rom.CHIP_NAME for rom in ROM_LIST if rom.IMAGE_CHIP_ID == chip_id), f"chip ID {chip_id}")


def _rom_load_lines(info, image):
    # What the ROM prints while it loads the second-stage bootloader into RAM.
    mode = _FLASH_MODES[image.flash_mode] if image.flash_mode < 4 else f"{image.flash_mode}"
    div = _CLOCK_DIV.get(image.flash_size_freq & 0x0F, 2)
    if info.key == "esp32":
        lines = [f"configsip: 0, SPIWP:{image.wp_pin:#x}",
                 f"clk_drv:{image.clk_drv:#04x},q_drv:{image.q_drv:#04x},d_drv:{image.d_drv:#04x},"
                 f"cs0_drv:{image.cs_drv:#04x},hd_drv:{image.hd_drv:#04x},wp_drv:{image.wp_drv:#04x}",
                 f"mode:{mode}, clock div:{div}"]
        lines += [f"load:{s.addr:#010x},len:{len(s.data)}" for s in image.segments]
    else:
        lines = [f"SPIWP:{image.wp_pin:#x}", f"mode:{mode}, clock div:{div}"]
        lines += [f"load:{s.addr:#010x},len:{len(s.data):#x}" for s in image.segments]
    lines.append(f"entry {image.entrypoint:#010x}")
    return "".join(line + "\r\n" for line in lines)


def partition_table(flash):
    # [(type, subtype, offset, size, label)] from the table at 0x8000: 32-byte entries with
    # magic 0x50AA, closed by an 0xEBEB entry that holds the MD5 of the entries before it.
    table, entries = flash[PARTITION_TABLE:PARTITION_TABLE + 0xC00], []
    for at in range(0, len(table), 32):
        entry = table[at:at + 32]
        if entry[:2] == b"\xeb\xeb":
            if hashlib.md5(table[:at]).digest() != entry[16:]:
                _stop(_idf_error("flash_parts", "Incorrect checksum of the partition table (MD5)")
                      + _table_error())
            return entries
        if entry[:2] != b"\xaa\x50":
            break
        kind, subtype, offset, size, label = struct.unpack_from("<BBII16s", entry, 2)
        entries.append((kind, subtype, offset, size, label.rstrip(b"\x00").decode(errors="replace")))
    if entries:
        _stop(_idf_error("flash_parts", "No MD5 found in partition table") + _table_error())
    magic = struct.unpack_from("<H", table)[0]
    _stop(_idf_error("flash_parts", f"partition 0 invalid magic number {magic:#x}") + _table_error())


def _table_error():
    return _idf_error("boot", "Failed to verify partition table") + _idf_error("boot", "load partition table error!")


def _app_partition(flash):
    # The factory app, else the lowest OTA slot (no OTA data to say otherwise).
    apps = {subtype: offset for kind, subtype, offset, _size, _label in partition_table(flash)
            if kind == 0 and (subtype == 0 or 0x10 <= subtype < 0x20)}
    if not apps:
        _stop(_idf_error("boot", "No bootable app partitions in the partition table"))
    subtype = min(apps)
    return ("factory" if subtype == 0 else f"ota_{subtype - 0x10}"), apps[subtype]


def _app_info(info, image):
    # esp_app_desc_t opens the app's first flash-mapped data (DROM) segment. MicroPython's
    # builds leave its project name and version empty (CONFIG_APP_EXCLUDE_PROJECT_*_VAR), so
    # the version may instead come from the REPL banner string inside the app.
    rom = info.rom
    drom = next((s for s in image.segments if rom.DROM_MAP_START <= s.addr < rom.DROM_MAP_END), None)
    desc = (_parse_app_info(drom.data) if drom is not None and len(drom.data) >= 256 else None) or {}
    app = {"project": desc.get("project_name", ""), "version": desc.get("version", ""),
           "idf_version": desc.get("idf_ver", "")}
    banner = _BANNER.search(b"".join(s.data for s in image.segments))
    if banner:  # MICROPY_BANNER_NAME_AND_VERSION: what the REPL's banner starts with
        app["banner"] = banner.group(0).decode()
        if not app["version"]:
            app.update(project=app["project"] or "micropython", version=banner.group(1).decode())
    return app
