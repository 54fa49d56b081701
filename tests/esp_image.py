# Small MicroPython-like firmware images for tests, made offline with esptool's image
# classes (so the checksums and appended SHA-256 digests are right), laid out like the
# official ESP32_GENERIC / ESP32_GENERIC_S3 .bin: one file written at the chip's bootloader
# offset holding the second-stage bootloader, the partition table (flash 0x8000) and the
# app (flash 0x10000). The app carries an esp_app_desc_t and MicroPython's banner string.
import hashlib
import struct

from esptool.bin_image import ELFSection, ESP32FirmwareImage, ESP32S3FirmwareImage

PARTITION_TABLE, APP = 0x8000, 0x10000
# MicroPython's partitions-4MiBplus.csv: nvs, phy_init, factory (the filesystem is made at runtime)
PARTITIONS = [("nvs", 1, 0x02, 0x9000, 0x6000), ("phy_init", 1, 0x01, 0xF000, 0x1000),
              ("factory", 0, 0x00, 0x10000, 0x210000)]
# Per chip: image class, bootloader offset, RAM segments of the bootloader, its entry point,
# where flash-mapped data (DROM) and code (IROM) appear, and MicroPython's board name.
CHIPS = {
    "esp32": (ESP32FirmwareImage, 0x1000, [(0x3FFF0030, 2048), (0x40078000, 6144), (0x40080400, 1536)],
              0x400805C4, 0x3F400020, 0x400D0020, "Generic ESP32 module with ESP32"),
    "esp32s3": (ESP32S3FirmwareImage, 0x0, [(0x3FCE3818, 2048), (0x403C9700, 1024), (0x403CC700, 4096)],
                0x403C9908, 0x3C000020, 0x42000020, "Generic ESP32S3 module with ESP32S3"),
}


def make_micropython_image(path, chip="esp32", version="v1.28.0", date="2026-04-06", flash_mb=4):
    image_class, offset, boot_segments, entry, drom, irom, board = CHIPS[chip]
    size_code = (flash_mb.bit_length() - 1) << 4  # the header's flash size nibble: 1 MiB = 0
    bootloader = _image(image_class, [_section(".boot", addr, _filler(addr, size)) for addr, size in boot_segments],
                        entry, size_code)
    banner = f"MicroPython {version} on {date}; {board}\0".encode()
    app = _image(image_class, [_section(".flash.rodata", drom, (_app_desc(version) + banner).ljust(1024, b"\0")),
                               _section(".flash.text", irom, _filler(irom, 8192)),
                               _section(".dram0.data", 0x3FFB0000 if chip == "esp32" else 0x3FC88000,
                                        _filler(1, 512))],
                 irom + 0x100, size_code)
    combined = bytearray(b"\xff" * (APP - offset + len(app)))
    combined[0:len(bootloader)] = bootloader
    table = partition_table()
    combined[PARTITION_TABLE - offset:PARTITION_TABLE - offset + len(table)] = table
    combined[APP - offset:] = app
    with open(path, "wb") as f:
        f.write(combined)
    return path


def _image(image_class, segments, entry, size_code):
    image = image_class()
    image.segments, image.entrypoint = segments, entry
    image.flash_mode, image.flash_size_freq = 2, size_code  # DIO, the flash size, 40 MHz
    image.max_rev_full = 399 if image_class is ESP32FirmwareImage else 99
    return image.save(None)


def _section(name, addr, data):
    return ELFSection(name.encode(), addr, data, flags=0)


def _app_desc(version):
    # esp_app_desc_t, 256 bytes (see esptool.cmds._parse_app_info)
    return struct.pack("<II8s32s32s16s16s32s32sHHB3s72s", 0xABCD5432, 0, b"", version.encode(),
                       b"micropython", b"12:00:00", b"Apr  6 2026", b"v5.4.2", hashlib.sha256(b"elf").digest(),
                       0, 99, 16, b"", b"")


def partition_table(partitions=PARTITIONS):
    entries = b"".join(struct.pack("<2sBBII16sI", b"\xaa\x50", kind, subtype, offset, size, name.encode(), 0)
                       for name, kind, subtype, offset, size in partitions)
    md5 = b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(entries).digest()
    return (entries + md5).ljust(0xC00, b"\xff")


def _filler(seed, size):
    # Deterministic bytes that look like code (not all zeros, not compressible to nothing).
    out = bytearray()
    block = seed.to_bytes(4, "little")
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block[:16] + bytes(16)
    return bytes(out[:size])
