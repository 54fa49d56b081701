# The virtual board's ROM: its serial download mode and what it does at reset.
#
# RomLoader is I/O-free on the serial side: feed(bytes from the host) -> bytes the chip
# answers. It speaks the ESP32 ROM loader protocol as esptool 5.6 uses it (--no-stub), and
# once esptool has uploaded its flasher stub it answers as that stub does (the stub's code
# is not run: the board knows esptool's stub by its entry point). The flash chip is a file,
# up to date after every command. What the board does with that flash at reset is
# host_tools/sim/bootloader.py.
# The reference for the protocol is esptool's loader.py, cmds.py and targets/esp32*.py.
import hashlib
import json
import struct
import zlib
from collections import namedtuple
from pathlib import Path

# At import, not lazily: esptool's own imports are circular and deadlock if two threads
# import it for the first time at once (the virtual board's thread and a tool's).
import esptool
from esptool.targets import CHIP_DEFS

FLASH_SIZE = 4 * 1024 * 1024
SECTOR = 0x1000
FLASH_ID = 0x1640EF  # JEDEC ID as esptool reads it from SPI W0: Winbond (0xEF), 4 MiB (0x16)
SYNC_FRAME = b"\xc0\x00\x08\x24\x00"  # a request, op SYNC, 36 bytes of data: how esptool says hello
_SYNC_DATA = b"\x07\x07\x12\x20" + 32 * b"\x55"
_SYNC_VALUE = 0x20120707  # what the ROM answers a SYNC with (the stub answers 0)
_SFDP = b"SFDP\x06\x01\x00\xff\x00\x06\x01\x10\x30\x00\x00\xff"  # header + first parameter header

# Opcodes (esptool's ESPLoader.ESP_CMDS)
_FLASH_BEGIN, _FLASH_DATA, _FLASH_END = 0x02, 0x03, 0x04
_MEM_BEGIN, _MEM_END, _MEM_DATA = 0x05, 0x06, 0x07
_SYNC, _WRITE_REG, _READ_REG, _SPI_SET_PARAMS, _SPI_ATTACH = 0x08, 0x09, 0x0A, 0x0B, 0x0D
_READ_FLASH_SLOW, _CHANGE_BAUDRATE = 0x0E, 0x0F
_DEFL_BEGIN, _DEFL_DATA, _DEFL_END, _FLASH_MD5, _SECURITY_INFO = 0x10, 0x11, 0x12, 0x13, 0x14
_ERASE_FLASH, _ERASE_REGION, _READ_FLASH = 0xD0, 0xD1, 0xD2
_SPI_USR = 1 << 18  # SPI_CMD_REG: start a user command; the hardware clears it when done

# What went wrong -> (ROM error code after status 1, the stub's one status code).
_ERRORS = {"invalid": (0x05, 0xC0), "failed": (0x06, 0xC4), "checksum": (0x07, 0xC1),
           "deflate": (0x0B, 0xC7), "not flashing": (0x06, 0xC6), "unknown": (0x05, 0xFF)}


class _Refused(Exception):
    """A command the chip answers with an error status (one of _ERRORS)."""


def is_sync(data):
    # Console bytes never hold 0xC0 (not in UTF-8): this is esptool starting a SYNC. esptool
    # writes each frame at once and tries SYNC again and again, so a frame split across two
    # reads only delays download mode to its next try.
    return SYNC_FRAME in data


# --- the chips ---------------------------------------------------------------------------

Chip = namedtuple("Chip", "key name rom boot_offset security_info registers rom_banner")


def _esp32_registers(rom, mac):
    # An ESP32-D0WD rev v1.0 (the ROM dated Jun 8 2016) with a 40 MHz crystal, in download mode.
    efuse = [0, int.from_bytes(mac[2:], "big"), _mac_crc(mac) << 16 | mac[0] << 8 | mac[1],
             1 << 15 | 1 << 13 | 1 << 9,  # rev bit 0, 240 MHz rated, package D0WD
             10 << 8 | 50, 0, 0]          # ADC Vref trim, 8 MHz clock calibration
    regs = {rom.EFUSE_RD_REG_BASE + 4 * n: word for n, word in enumerate(efuse)}
    regs.update({rom.CHIP_DETECT_MAGIC_REG_ADDR: rom.MAGIC_VALUE, rom.APB_CTL_DATE_ADDR: 0x16042000,
                 rom.RTCCALICFG1: 2048 << rom.TIMERS_RTC_CALI_VALUE_S,  # 40 MHz as the ROM measured it
                 rom.GPIO_STRAP_REG: 0x03})  # GPIO0 low: download boot
    return regs


def _esp32s3_registers(rom, mac):
    # An ESP32-S3 (QFN56) rev v0.2 with external flash, in download mode.
    return {rom.MAC_EFUSE_REG: int.from_bytes(mac[2:], "big"), rom.MAC_EFUSE_REG + 4: mac[0] << 8 | mac[1],
            rom.EFUSE_BLOCK1_ADDR + 12: 2 << 18, rom.GPIO_STRAP_REG: 0x00}


def _mac_crc(mac):
    # CRC-8 (Dallas/Maxim) that the ESP32 keeps next to its MAC in eFuse.
    crc = 0
    for byte in mac:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def chip_info(key):
    chips = {
        "esp32": Chip("esp32", "ESP32", CHIP_DEFS["esp32"], 0x1000, False, _esp32_registers,
                      "ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"),
        "esp32s3": Chip("esp32s3", "ESP32-S3", CHIP_DEFS["esp32s3"], 0x0, True, _esp32s3_registers,
                        "ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\n"
                        "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n"),
    }
    if key not in chips:
        raise ValueError(f"the virtual board is an esp32 or esp32s3, not {key!r}")
    return chips[key]


def _stub_entries(chip):
    # Entry points of esptool's flasher stubs for this chip: MEM_END jumping there runs the stub.
    folder = Path(esptool.__file__).parent / "targets" / "stub_flasher"
    return {json.loads(p.read_text())["entry"] for p in folder.glob(f"*/{chip.key}.json")}


# --- the flash chip ----------------------------------------------------------------------

class Flash:
    """The SPI flash, kept in a file. Programming only clears bits, as NOR flash does."""

    def __init__(self, path, size=FLASH_SIZE):
        self.path, self.size = Path(path), size
        if not self.path.exists():
            self.path.write_bytes(b"\xff" * size)

    def read(self, offset, length):
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length).ljust(length, b"\xff")

    def program(self, offset, data):
        old = self.read(offset, len(data))
        self._store(offset, bytes(a & b for a, b in zip(old, data)))

    def erase(self, offset, length):
        # Whole sectors, as the chip erases.
        start = offset - offset % SECTOR
        end = min(self.size, -(-(offset + length) // SECTOR) * SECTOR)
        if end > start:
            self._store(start, b"\xff" * (end - start))

    def _store(self, offset, data):
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(data)


# --- SLIP --------------------------------------------------------------------------------

def slip(packet):
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class SlipDecoder:
    """Bytes in any chunking -> whole frames; None for a frame with a bad escape."""

    def __init__(self):
        self._frame, self._escaped, self._bad = None, False, False

    def feed(self, data):
        frames = []
        for byte in data:
            if byte == 0xC0:
                if self._frame:
                    frames.append(None if self._bad else bytes(self._frame))
                self._frame, self._escaped, self._bad = bytearray(), False, False
            elif self._frame is None:
                continue  # noise before the first frame
            elif self._escaped:
                self._escaped = False
                self._bad |= byte not in (0xDC, 0xDD)
                self._frame.append(0xC0 if byte == 0xDC else 0xDB)
            elif byte == 0xDB:
                self._escaped = True
            else:
                self._frame.append(byte)
        return frames


# --- the ROM loader (and esptool's stub) -------------------------------------------------

class _FlashWrite:
    """A FLASH_BEGIN or FLASH_DEFL_BEGIN in progress."""

    def __init__(self, offset, block_size, compressed):
        self.offset, self.block_size = offset, block_size
        self.inflate = zlib.decompressobj() if compressed else None
        self.written = 0  # bytes decompressed so far


class RomLoader:
    def __init__(self, flash_path, chip="esp32", mac=b"\x24\x0a\xc4\x00\x00\x01"):
        self.chip = chip_info(chip)
        self.flash = Flash(flash_path)
        self.mac = bytes(mac)
        self.registers = self.chip.registers(self.chip.rom, self.mac)
        self.registers[self.chip.rom.UART_CLKDIV_REG] = _clkdiv(115200)
        self.run_user_code = False  # the host asked to leave download mode and boot the flash
        self.erased = False         # the whole chip was erased (stub ERASE_FLASH)
        self._slip = SlipDecoder()
        self._reboot()

    def _reboot(self):
        # A software reset lands in the ROM loader again: the strapping pins were latched at power-on.
        self.stub = False           # esptool's flasher stub is "running"
        self._write = None          # _FlashWrite in progress
        self._read = None           # _FlashRead in progress (stub READ_FLASH)
        self._ram = None            # MEM_BEGIN in progress: bytes still expected

    def feed(self, data):
        out = []
        for frame in self._slip.feed(data):
            if self.run_user_code:
                break  # the chip is running the firmware now
            out.append(self._read_ack(frame) if self._read else self._command(frame))
        return b"".join(out)

    def _command(self, frame):
        if frame is None or len(frame) < 8 or frame[0] != 0x00:
            return self._error(frame[1] if frame and len(frame) > 1 else 0, "invalid")
        op, size, checksum = struct.unpack_from("<BHI", frame, 1)
        data = frame[8:]
        handler = self._handlers().get(op)
        if size != len(data):
            return self._error(op, "invalid")
        if handler is None:
            return self._error(op, "unknown")
        try:
            return handler(op, data, checksum)
        except _Refused as e:
            return self._error(op, e.args[0])
        except (struct.error, ValueError):
            return self._error(op, "invalid")

    def _handlers(self):
        handlers = {
            _SYNC: self._sync, _READ_REG: self._read_reg, _WRITE_REG: self._write_reg,
            _SPI_ATTACH: self._ack, _SPI_SET_PARAMS: self._ack, _CHANGE_BAUDRATE: self._change_baudrate,
            _FLASH_BEGIN: self._flash_begin, _FLASH_DATA: self._flash_data, _FLASH_END: self._flash_end,
            _DEFL_BEGIN: self._flash_begin, _DEFL_DATA: self._flash_data, _DEFL_END: self._flash_end,
            _FLASH_MD5: self._flash_md5, _MEM_BEGIN: self._mem_begin, _MEM_DATA: self._mem_data,
            _MEM_END: self._mem_end,
        }
        if self.chip.security_info:
            handlers[_SECURITY_INFO] = self._security_info
        if self.stub:
            handlers.update({_ERASE_FLASH: self._erase_flash, _ERASE_REGION: self._erase_region,
                             _READ_FLASH: self._read_flash})
        else:
            handlers[_READ_FLASH_SLOW] = self._read_flash_slow
        return handlers

    # Responses: the ROM sends 4 status bytes (status, error, 0, 0), the stub 2 (error, 0).
    def _ok(self, op, value=0, payload=b""):
        status = b"\x00\x00" if self.stub else b"\x00\x00\x00\x00"
        return slip(struct.pack("<BBHI", 1, op, len(payload) + len(status), value) + payload + status)

    def _error(self, op, what):
        rom_code, stub_code = _ERRORS[what]
        status = bytes([stub_code, 0]) if self.stub else bytes([1, rom_code, 0, 0])
        return slip(struct.pack("<BBHI", 1, op, len(status), 0) + status)

    def _ack(self, op, data, checksum):
        return self._ok(op)

    def _sync(self, op, data, checksum):
        if data != _SYNC_DATA:
            raise _Refused("invalid")
        return 8 * self._ok(op, 0 if self.stub else _SYNC_VALUE)  # esptool reads 8 answers

    def _read_reg(self, op, data, checksum):
        (address,) = struct.unpack("<I", data)
        return self._ok(op, self.registers.get(address, 0))

    def _write_reg(self, op, data, checksum):
        if not data or len(data) % 16:
            raise _Refused("invalid")
        for address, value, mask, _delay in struct.iter_unpack("<IIII", data):
            self.registers[address] = (self.registers.get(address, 0) & ~mask) | (value & mask)
            if address == self.chip.rom.SPI_REG_BASE and value & _SPI_USR:
                self._spi_command()
        return self._ok(op)

    def _spi_command(self):
        # esptool reads the flash's ID, SFDP and status through SPI0's "user command" registers.
        rom, regs = self.chip.rom, self.registers
        command = regs.get(rom.SPI_REG_BASE + rom.SPI_USR2_OFFS, 0) & 0xFF
        address = regs.get(rom.SPI_REG_BASE + 4, 0)
        address = address >> 8 if rom.SPI_ADDR_REG_MSB else address  # 24-bit address
        if command == 0x9F:
            result = FLASH_ID
        elif command == 0x5A:
            result = int.from_bytes(_SFDP.ljust(256, b"\x00")[address:address + 4].ljust(4, b"\x00"), "little")
        else:
            result = 0  # status registers read 0; reset, write-enable etc. return nothing
        regs[rom.SPI_REG_BASE + rom.SPI_W0_OFFS] = result
        regs[rom.SPI_REG_BASE] &= ~_SPI_USR

    def _change_baudrate(self, op, data, checksum):
        baud, _old = struct.unpack("<II", data)
        if not 9600 <= baud <= 5_000_000:
            raise _Refused("invalid")
        self.registers[self.chip.rom.UART_CLKDIV_REG] = _clkdiv(baud)
        return self._ok(op)

    def _security_info(self, op, data, checksum):
        # flags, flash_crypt_cnt, 7 key purposes, chip ID, API version: nothing secured.
        info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.rom.IMAGE_CHIP_ID, 0)
        return self._ok(op, payload=info)

    # -- flash writes: FLASH_BEGIN erases the region (the stub erases as it writes: same end state)
    def _flash_begin(self, op, data, checksum):
        size, _blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if len(data) == 20 and struct.unpack_from("<I", data, 16)[0]:
            raise _Refused("failed")  # encrypted writes: the virtual board has no flash encryption
        if len(data) not in (16, 20) or offset + size > self.flash.size or not block_size:
            raise _Refused("invalid")
        self.flash.erase(offset, size)
        self._write = _FlashWrite(offset, block_size, compressed=op == _DEFL_BEGIN)
        return self._ok(op)

    def _flash_data(self, op, data, checksum):
        block = self._checked_block(data, checksum)
        write = self._write
        if write is None or (write.inflate is None) != (op == _FLASH_DATA):
            raise _Refused("not flashing")
        if write.inflate is None:
            seq = struct.unpack_from("<I", data, 4)[0]
            self._program(write, seq * write.block_size, block)
        else:
            try:
                plain = write.inflate.decompress(block)
            except zlib.error:
                raise _Refused("deflate")
            self._program(write, write.written, plain)
            write.written += len(plain)
        return self._ok(op)

    def _program(self, write, position, data):
        if write.offset + position + len(data) > self.flash.size:
            raise _Refused("failed")
        self.flash.program(write.offset + position, data)

    def _checked_block(self, data, checksum):
        length = struct.unpack_from("<I", data)[0]
        block = data[16:]
        if length != len(block):
            raise _Refused("invalid")
        if checksum != _checksum(block):
            raise _Refused("checksum")
        return block

    def _flash_end(self, op, data, checksum):
        (run,) = struct.unpack("<I", data)
        self._write = None
        reply = self._ok(op)
        if not run:
            self._reboot()
        elif not self.stub:
            self.run_user_code = True  # the ROM jumps to the second-stage bootloader
        return reply

    def _flash_md5(self, op, data, checksum):
        offset, length = struct.unpack_from("<II", data)
        if offset + length > self.flash.size:
            raise _Refused("failed")
        digest = hashlib.md5(self.flash.read(offset, length))
        return self._ok(op, payload=digest.digest() if self.stub else digest.hexdigest().encode())

    def _read_flash_slow(self, op, data, checksum):
        offset, length = struct.unpack("<II", data)
        if length > 64 or offset + length > self.flash.size:
            raise _Refused("invalid")
        return self._ok(op, payload=self.flash.read(offset, length).ljust(64, b"\xff"))  # always 64 bytes

    # -- RAM downloads: only esptool's stub can "run" here
    def _mem_begin(self, op, data, checksum):
        size, _blocks, _block_size, _address = struct.unpack("<IIII", data)
        self._ram = size
        return self._ok(op)

    def _mem_data(self, op, data, checksum):
        block = self._checked_block(data, checksum)
        if self._ram is None or len(block) > self._ram:
            raise _Refused("not flashing")
        self._ram -= len(block)
        return self._ok(op)

    def _mem_end(self, op, data, checksum):
        stay, entry = struct.unpack("<II", data)
        self._ram = None
        if stay:
            return self._ok(op)
        if entry not in _stub_entries(self.chip):
            raise _Refused("failed")  # the virtual board cannot run arbitrary RAM code
        reply = self._ok(op)
        self.stub = True
        return reply + slip(b"OHAI")

    # -- stub only
    def _erase_flash(self, op, data, checksum):
        self.flash.erase(0, self.flash.size)
        self.erased = True
        return self._ok(op)

    def _erase_region(self, op, data, checksum):
        offset, size = struct.unpack("<II", data)
        if offset % SECTOR or size % SECTOR or offset + size > self.flash.size:
            raise _Refused("invalid")
        self.flash.erase(offset, size)
        return self._ok(op)

    def _read_flash(self, op, data, checksum):
        offset, length, block, window = struct.unpack("<IIII", data)
        if offset + length > self.flash.size or not block or not window:
            raise _Refused("invalid")
        self._read = _FlashRead(offset, length, block, window)
        return self._ok(op) + self._read_send(acked=0)

    def _read_ack(self, frame):
        if frame is None or len(frame) != 4:
            return b""  # not an ack: the stub keeps waiting for one
        return self._read_send(struct.unpack("<I", frame)[0])

    def _read_send(self, acked):
        read, out = self._read, []
        while read.sent < read.length and read.sent - acked < read.window * read.block:
            size = min(read.block, read.length - read.sent)
            out.append(slip(self.flash.read(read.offset + read.sent, size)))
            read.sent += size
        if acked >= read.length:
            out.append(slip(hashlib.md5(self.flash.read(read.offset, read.length)).digest()))
            self._read = None
        return b"".join(out)


class _FlashRead:
    """The stub's READ_FLASH: data goes out in SLIP frames of `block` bytes, at most `window`
    frames unacknowledged; the host acks with the total it has; after the last ack, the MD5
    of it all (16 raw bytes)."""

    def __init__(self, offset, length, block, window):
        self.offset, self.length, self.block, self.window = offset, length, block, window
        self.sent = 0


def _checksum(data):
    state = 0xEF
    for byte in data:
        state ^= byte
    return state


def _clkdiv(baud):
    # UART_CLKDIV for a baud rate from the 40 MHz APB clock: integer part, 4-bit fraction at bit 20.
    sixteenths = round(40_000_000 * 16 / baud)
    return (sixteenths % 16) << 20 | sixteenths // 16
