# The virtual board's ROM download mode against the real esptool (CLI and Python API, with
# and without its flasher stub) over a TCP "serial port" (socket://) and a pty, and
# `earshot flash` against it: what lands in the flash file, whether it would boot, what the
# tools print, and the one-line hints for the failures a user meets.
import functools
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import tty
from pathlib import Path

import esptool
import pytest
import serial
from esp_image import make_micropython_image
from esptool.util import FatalError

from host_tools import flash as flash_cmd
from host_tools.sim import bootloader, rom

MAC = "24:0a:c4:00:00:01"
BLANK_BOOT = ("ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
              "invalid header: 0xffffffff\r\n")


class Board:
    """The virtual board's UART on a TCP port: each connection meets the ROM in download mode."""

    def __init__(self, flash_path, chip="esp32"):
        self.flash_path, self.chip, self.loaders = Path(flash_path), chip, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            loader = rom.RomLoader(self.flash_path, self.chip)
            self.loaders.append(loader)
            with conn:
                try:
                    while data := conn.recv(65536):
                        conn.sendall(loader.feed(data))
                except OSError:
                    pass  # the tool went away mid-answer

    def flash(self, offset, length):
        return self.flash_path.read_bytes()[offset:offset + length]

    def close(self):
        self.server.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return {chip: Path(make_micropython_image(folder / f"{chip}.bin", chip)) for chip in ("esp32", "esp32s3")}


@pytest.fixture
def board(tmp_path):
    b = Board(tmp_path / "flash.bin")
    yield b
    b.close()


def esptool_run(board, *args, stub=False):
    # --after no-reset: a socket has no RTS to pull, and esptool would wait 0.1 s trying
    esptool.main(["--port", board.url, "--after", "no-reset", *([] if stub else ["--no-stub"]), *map(str, args)])


# --- esptool against the virtual board -----------------------------------------------------

def test_esptool_reads_chip_mac_and_flash_size(board, capsys):
    esptool_run(board, "chip-id")
    esptool_run(board, "flash-id")
    esptool_run(board, "read-mac")
    out = capsys.readouterr().out
    assert "Chip type:          ESP32-D0WD (revision v1.0)" in out
    assert out.count(f"MAC:                {MAC}") >= 4  # printed at connect, and by chip-id and read-mac
    assert "Manufacturer: ef" in out and "Detected flash size: 4MB" in out


def test_rom_write_verify_and_a_corrupted_byte(board, images, capsys):
    image = images["esp32"].read_bytes()
    assert not bootloader.boot_check(board.flash_path).ok  # a new board: the flash is erased
    esptool_run(board, "write-flash", "0x1000", images["esp32"])
    assert board.flash(0x1000, len(image)) == image
    assert board.flash(0, 0x1000) == b"\xff" * 0x1000
    boot = bootloader.boot_check(board.flash_path)
    assert boot.ok and boot.app["version"] == "v1.28.0" and boot.app["project"] == "micropython"
    assert boot.console.endswith("entry 0x400805c4\r\n")
    esptool_run(board, "verify-flash", "0x1000", images["esp32"])
    assert "Verification successful (digest matched)" in capsys.readouterr().out

    flash = bytearray(board.flash_path.read_bytes())
    flash[0x10000 + 0x1100] ^= 0x01  # one bit of the app's code
    board.flash_path.write_bytes(flash)
    with pytest.raises(FatalError, match="Verification failed"):
        esptool_run(board, "verify-flash", "0x1000", images["esp32"])
    boot = bootloader.boot_check(board.flash_path)
    assert not boot.ok and "Factory app partition is not bootable" in boot.console


def test_esptool_with_its_stub(board, images, tmp_path):
    image = images["esp32"].read_bytes()
    esptool_run(board, "write-flash", "0x1000", images["esp32"], stub=True)  # compressed blocks
    assert board.flash(0x1000, len(image)) == image
    esptool_run(board, "read-flash", "0x8000", "0x2000", tmp_path / "table.bin", stub=True)
    assert (tmp_path / "table.bin").read_bytes() == image[0x7000:0x9000]
    esptool_run(board, "erase-region", "0x10000", "0x1000", stub=True)
    assert board.flash(0x10000, 0x1000) == b"\xff" * 0x1000 and board.flash(0x11000, 16) == image[0x10000:0x10010]
    assert not any(loader.erased for loader in board.loaders)
    esptool_run(board, "erase-flash", stub=True)
    assert board.flash_path.read_bytes() == b"\xff" * rom.FLASH_SIZE and board.loaders[-1].erased


def test_esp32s3_is_detected_and_written_at_0(tmp_path, images, capsys):
    board = Board(tmp_path / "s3.bin", "esp32s3")
    try:
        esptool_run(board, "write-flash", "0x0", images["esp32s3"])
    finally:
        board.close()
    assert "ESP32-S3 (QFN56) (revision v0.2)" in capsys.readouterr().out
    assert bootloader.boot_check(board.flash_path, "esp32s3").ok


def test_blank_flash_prints_what_a_real_esp32_prints(tmp_path):
    boot = bootloader.boot_check(tmp_path / "new.bin")
    assert boot == (False, BLANK_BOOT, {})


def test_the_loader_answers_bad_frames_with_an_error_status(tmp_path):
    loader = rom.RomLoader(tmp_path / "flash.bin")
    sync = rom.slip(b"\x00\x08\x24\x00\x00\x00\x00\x00\x07\x07\x12\x20" + 32 * b"\x55")
    assert rom.is_sync(b"ok\r\n>>> " + sync[:6]) and not rom.is_sync("é€ ok\r\n".encode())
    answers = b"".join(loader.feed(sync[i:i + 3]) for i in range(0, len(sync), 3))  # split frames
    assert answers == 8 * bytes.fromhex("c0 01 08 04 00 07 07 12 20 00 00 00 00 c0")
    begin = rom.slip(bytes.fromhex("00 02 10 00 00 00 00 00") + bytes.fromhex("00040000 01000000 00040000 00000100"))
    assert loader.feed(begin) == bytes.fromhex("c0 01 02 04 00 00 00 00 00 00 00 00 00 c0")
    block = bytes.fromhex("00 03 10 04 00 00 00 00 00040000 00000000 00000000 00000000") + b"\x01" * 1024
    assert loader.feed(rom.slip(block)) == bytes.fromhex("c0 01 03 04 00 00 00 00 00 01 07 00 00 c0")  # bad checksum
    assert loader.feed(b"\xc0\x00\x0a\x04\xc0") == bytes.fromhex("c0 01 0a 04 00 00 00 00 00 01 05 00 00 c0")
    assert loader.feed(b"\xc0\x00\x0a\xdb\x01\xc0") == bytes.fromhex("c0 01 00 04 00 00 00 00 00 01 05 00 00 c0")
    assert loader.feed(rom.slip(b"\x00\xd0\x00\x00\x00\x00\x00\x00")) == bytes.fromhex(
        "c0 01 d0 04 00 00 00 00 00 01 05 00 00 c0")  # erase-flash: only the stub knows it
    for seed in range(300):  # noise never escapes feed() as an exception
        noise = hashlib.sha256(seed.to_bytes(2, "little")).digest() * 3
        loader.feed(noise[:seed % 90].replace(b"\x11", b"\xc0").replace(b"\x22", b"\xdb"))
    assert loader.flash.read(0x10000, 4) == b"\xff" * 4


# --- earshot flash -------------------------------------------------------------------------

def test_earshot_flash_from_the_rom(board, images, earshot):
    status, out, err = earshot("flash", "--port", board.url, "--firmware", images["esp32"], "--no-stub")
    assert status == 0, err
    assert ("earshot flash: note: the ESP32 ROM loader cannot erase the whole chip (that needs esptool's stub, "
            "so not with --no-stub); writing erases only the sectors it writes") in out
    image = images["esp32"].read_bytes()
    assert out.strip().splitlines()[-1] == (f"earshot flash: MicroPython v1.28.0 written to ESP32 (MAC {MAC}) at "
                                            f"0x1000, {len(image)} bytes, verified")
    assert board.flash(0x1000, len(image)) == image
    assert board.loaders[-1].run_user_code  # the board left download mode to boot it
    assert bootloader.boot_check(board.flash_path).ok


def test_earshot_flash_with_the_stub_erases_the_filesystem_first(board, images, earshot):
    rom.Flash(board.flash_path).program(0x300000, b"boot.py")  # a file on the board's filesystem
    status, out, err = earshot("flash", "--port", board.url, "--firmware", images["esp32"])
    assert status == 0, err
    assert board.flash(0x300000, 7) == b"\xff" * 7 and board.loaders[0].erased
    assert board.loaders[-1].run_user_code  # the stub rebooted into the ROM, which ran the firmware
    assert out.strip().endswith("verified")


def test_earshot_flash_on_a_pty(tmp_path, images, earshot):
    master, slave = os.openpty()
    tty.setraw(slave)
    loader = rom.RomLoader(tmp_path / "flash.bin")

    def serve():
        nonlocal loader
        while data := os.read(master, 65536):
            os.write(master, loader.feed(data))
            if loader.run_user_code:
                break

    threading.Thread(target=serve, daemon=True).start()
    try:
        status, out, err = earshot("flash", "--port", os.ttyname(slave), "--firmware", images["esp32"], "--no-stub")
    finally:
        os.close(slave)
    assert status == 0, err
    assert loader.run_user_code and bootloader.boot_check(tmp_path / "flash.bin").ok


def test_an_image_for_another_chip_is_refused_before_writing(board, images, earshot):
    status, out, err = earshot("flash", "--port", board.url, "--firmware", images["esp32s3"])
    assert status == 1
    assert err == "earshot: this image is for ESP32-S3, the board is an ESP32: pass the ESP32_GENERIC build\n"
    assert board.flash_path.read_bytes() == b"\xff" * rom.FLASH_SIZE


def test_a_build_for_more_flash_than_the_board_has(tmp_path, earshot):
    # MicroPython's ESP32_GENERIC_S3 is built for 8 MiB; a board with 4 MiB would boot-loop.
    big = make_micropython_image(tmp_path / "s3-8mb.bin", "esp32s3", flash_mb=8)
    flash = bytearray(b"\xff" * rom.FLASH_SIZE)
    flash[:big.stat().st_size] = big.read_bytes()
    boot = bootloader.boot_flash(bytes(flash), "esp32s3")
    assert not boot.ok and "Detected size(4096k) smaller than the size in the binary image header(8192k)" in boot.console
    board = Board(tmp_path / "s3.bin", "esp32s3")
    try:
        status, out, err = earshot("flash", "--port", board.url, "--firmware", big)
    finally:
        board.close()
    assert status == 1 and "built for more flash than the board's 4 MiB" in err and "FLASH_4M" in err
    assert board.flash_path.read_bytes() == b"\xff" * rom.FLASH_SIZE


def test_a_chip_named_wrong(board, images, earshot):
    status, out, err = earshot("flash", "--port", board.url, "--chip", "esp32s3", "--firmware", images["esp32s3"])
    assert status == 1 and err == "earshot: the board is an ESP32, not an ESP32-S3: pass --chip auto\n"


def test_a_file_that_is_not_an_image(board, tmp_path, earshot):
    (tmp_path / "notes.txt").write_text("hello")
    status, out, err = earshot("flash", "--port", board.url, "--firmware", tmp_path / "notes.txt")
    assert status == 1 and "notes.txt is not an ESP firmware image (it starts with 68 65 6c 6c" in err
    assert not board.loaders  # refused before touching the board


def test_a_port_that_does_not_exist(images, earshot):
    status, out, err = earshot("flash", "--port", "/dev/ttyUSB97", "--firmware", images["esp32"])
    assert status == 1
    assert err == ("earshot: no such port /dev/ttyUSB97: check the name, or leave out --port to find the board on "
                   "USB\n")


def test_a_url_pyserial_does_not_know(images, earshot):
    status, out, err = earshot("flash", "--port", "bogus://x", "--firmware", images["esp32"])
    assert status == 1 and "neither a serial port nor a URL pyserial knows" in err


def test_erase_without_the_stub_is_refused_before_connecting(images, earshot):
    status, out, err = earshot("flash", "--port", "/dev/ttyUSB97", "--firmware", images["esp32"], "--erase",
                               "--no-stub")
    assert status == 1 and "--erase needs esptool's stub" in err


def test_a_port_where_nothing_answers(images, earshot, monkeypatch):
    monkeypatch.setattr(flash_cmd, "CONNECT_ATTEMPTS", 1)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers: a board not in download mode
    url = f"socket://127.0.0.1:{silent.getsockname()[1]}"
    with silent:
        status, out, err = earshot("flash", "--port", url, "--firmware", images["esp32"])
    assert status == 1
    assert err == (f"earshot: no answer from a board in download mode on {url}: hold BOOT, tap EN (reset), "
                   "release BOOT, then run again\n")


def test_a_port_another_program_holds(images, earshot):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    with serial.serial_for_url(path, exclusive=True):  # e.g. earshot monitor
        status, out, err = earshot("flash", "--port", path, "--firmware", images["esp32"])
    os.close(master), os.close(slave)
    assert status == 1
    assert err == f"earshot: {path} is busy: another program has the port open: close earshot monitor / screen\n"


def test_a_port_this_user_may_not_open(images):
    # A pty with mode 000. root may open anything, so as root earshot runs without the
    # capability that lets it (setpriv drops CAP_DAC_OVERRIDE).
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.chmod(path, 0)
    as_user = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    try:
        proc = subprocess.run([*as_user, sys.executable, "-m", "host_tools", "flash", "--port", path,
                               "--firmware", images["esp32"]], cwd=Path(flash_cmd.__file__).parents[1],
                              capture_output=True, text=True, timeout=60)
    finally:
        os.close(master), os.close(slave)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.endswith(f"earshot: cannot open {path}: permission denied: add your user to the dialout "
                                "group, then log in again\n")


# --- official builds by version ------------------------------------------------------------

@pytest.fixture
def micropython_org(tmp_path, images, monkeypatch):
    # A local stand-in for micropython.org: the board's download page and the build it links.
    site = tmp_path / "site"
    name = "ESP32_GENERIC-20260406-v1.28.0.bin"
    (site / "download" / "ESP32_GENERIC").mkdir(parents=True)
    (site / "download" / "ESP32_GENERIC" / "index.html").write_text(
        f'<a href="/resources/firmware/{name}">v1.28.0 (2026-04-06) .bin</a>\n'
        '<a href="/resources/firmware/ESP32_GENERIC-20251209-v1.27.0.bin">v1.27.0 .bin</a>\n')
    (site / "resources" / "firmware").mkdir(parents=True)
    shutil.copy(images["esp32"], site / "resources" / "firmware" / name)
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("EARSHOT_FIRMWARE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield tmp_path / "cache" / "earshot" / "firmware" / name
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_version_is_fetched_checked_and_cached(board, images, micropython_org, earshot, monkeypatch):
    status, out, err = earshot("flash", "--port", board.url, "--version", "1.28.0", "--no-stub")
    assert status == 0, err
    assert "downloading http://127.0.0.1:" in out and out.strip().endswith("bytes, verified")
    image = images["esp32"].read_bytes()
    assert micropython_org.read_bytes() == image and board.flash(0x1000, len(image)) == image
    recorded = micropython_org.with_name(micropython_org.name + ".sha256").read_text()
    assert recorded == hashlib.sha256(image).hexdigest() + "\n"

    monkeypatch.setenv("EARSHOT_FIRMWARE_URL", "http://127.0.0.1:1")  # offline now: the cache serves
    status, out, err = earshot("flash", "--port", board.url, "--version", "v1.28.0", "--no-stub")
    assert status == 0 and f"using {micropython_org}" in out

    micropython_org.write_bytes(image[:-1] + b"\x00")
    status, out, err = earshot("flash", "--port", board.url, "--version", "v1.28.0", "--no-stub")
    assert status == 1 and "changed since it was downloaded" in err and "delete it and run again" in err


def test_a_version_that_is_not_published(board, micropython_org, earshot):
    status, out, err = earshot("flash", "--port", board.url, "--version", "v9.9.9", "--no-stub")
    assert status == 1
    assert "no MicroPython v9.9.9 build for ESP32_GENERIC on http://127.0.0.1:" in err
    assert "(releases there: v1.27.0, v1.28.0)" in err


def test_offline_says_to_pass_the_file(board, tmp_path, earshot, monkeypatch):
    monkeypatch.setenv("EARSHOT_FIRMWARE_URL", "http://127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status, out, err = earshot("flash", "--port", board.url, "--version", "v1.28.0")
    assert status == 1
    assert err.startswith("earshot: cannot reach micropython.org (")
    assert err.endswith("): download the .bin yourself and pass --firmware PATH\n")
    assert board.flash_path.read_bytes() == b"\xff" * rom.FLASH_SIZE
