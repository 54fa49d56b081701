# The virtual board's serial side with the real mpremote and a raw socket: MicroPython's
# REPL (friendly, raw, raw paste, soft reset), Ctrl-C stopping main.py, machine.reset(),
# the reset button and a blank flash, a busy port, and a pty.
import hashlib
import json
import re
import socket
import subprocess
import time

import pytest
from esp_image import make_micropython_image
from serial_sim import EARSHOT, SerialSim, tool

from host_tools.sim import bootloader

BANNER = b'MicroPython v1.28.0 on 2026-04-06; Generic ESP32 module with ESP32\r\nType "help()" for more information.\r\n'
MAIN_PY = 'import time\nprint("I main boot firmware=test")\nwhile True:\n    time.sleep_ms(50)\n'



def mpremote(sim, *args):
    done = tool("mpremote", "connect", sim.url, *args)
    return done.returncode, done.stdout + done.stderr


def test_mpremote_copies_lists_runs_and_soft_resets(board, tmp_path):
    (tmp_path / "hello.py").write_text('print("hello from the board")\n')
    code, out = mpremote(board, "fs", "cp", tmp_path / "hello.py", ":hello.py", "+", "fs", "ls", "+",
                         "exec", "import hello; kept = 42", "+", "exec", "print(kept)", "+", "fs", "sha256sum",
                         ":hello.py")
    assert code == 0, out
    assert "hello from the board" in out and "\n42" in out  # globals last through one session
    assert (board.board_dir / "hello.py").read_text() == 'print("hello from the board")\n'
    assert re.search(r"^ +30 hello.py$", out, re.M)  # sizes, as a real ESP32's ilistdir gives them
    assert hashlib.sha256(b'print("hello from the board")\n').hexdigest() in out

    code, out = mpremote(board, "exec", "print('kept' in globals())")  # mpremote soft-resets on connect
    assert code == 0 and out.strip() == "False", out
    code, out = mpremote(board, "exec", "1/0")
    assert code == 1 and 'File "<stdin>", line 1' in out and "ZeroDivisionError" in out, out
    code, out = mpremote(board, "fs", "rm", ":hello.py", "+", "fs", "ls")
    assert code == 0 and "hello.py" not in out.partition("ls :")[2] and not (board.board_dir / "hello.py").exists()


def _session(url):
    host, port = url.removeprefix("socket://").split(":")
    s = socket.create_connection((host, int(port)))
    s.settimeout(10)  # a busy CI machine boots slowly
    return s


def test_ctrl_c_ends_earshot_the_way_the_board_does(board):
    # On a board the ring keeps its last colour unless the firmware turns it off: Ctrl-C
    # must run main.py's clean-up, and the traceback is MicroPython's own.
    assert tool("earshot", "deploy", "--port", board.url, "--no-reset").returncode == 0
    with _session(board.url) as s:
        board.type("r")
        _read_until(s, b"why=receiver_unreachable\r\n")  # no receiver set: offline, the ring amber
        s.sendall(b"\r\x03")
        shown = _read_until(s, b">>> ")
    assert b'File "earshot/app.py"' in shown and b"KeyboardInterrupt: \r\n" in shown and b"shims" not in shown
    leds = [json.loads(line)["rgb"] for line in board.trace.read_text().splitlines() if '"ev": "led"' in line]
    assert any(any(map(any, rgb)) for rgb in leds) and not any(map(any, leds[-1]))  # lit, then dark


def _read_n(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, data
        data += chunk
    return data


def _read_until(s, ending):
    data = b""
    while not data.endswith(ending):
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_the_raw_repl_bytes_are_micropythons(board):
    with _session(board.url) as s:
        s.sendall(b"\r\x03\r\x01")
        assert _read_until(s, b"raw REPL; CTRL-B to exit\r\n>")
        s.sendall(b"print(6*7)\x04")
        assert _read_until(s, b">") == b"OK42\r\n\x04\x04>"
        s.sendall(b"\x04")  # soft reset on an empty line
        assert _read_until(s, b">") == b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>"
        s.sendall(b"\x05A\x01")  # raw paste: a window, acknowledged as it is consumed
        header = _read_n(s, 5)
        assert header[:2] == b"R\x01" and header[4:] == b"\x01"
        window = int.from_bytes(header[2:4], "little")
        code = b"x = '" + b"a" * (window * 2) + b"'\nprint(len(x))"
        s.sendall(code + b"\x04")
        assert _read_until(s, b"\x04>").endswith(b"%d\r\n\x04\x04>" % (window * 2))
        s.sendall(b"\x02")  # back to the friendly REPL
        assert _read_until(s, b">>> ").endswith(b'Type "help()" for more information.\r\n>>> ')
        s.sendall(b"for i in range(2):\r")
        assert _read_until(s, b"... ")
        s.sendall(b"  print(i)\r\r")
        assert _read_until(s, b">>> ").endswith(b"0\r\n1\r\n>>> ")


def test_ctrl_c_stops_main_py_and_a_reset_starts_it_again(board, tmp_path):
    (tmp_path / "main.py").write_text(MAIN_PY)
    code, out = mpremote(board, "fs", "cp", tmp_path / "main.py", ":main.py")
    assert code == 0, out
    with _session(board.url) as s:
        board.type("r")  # the reset button: the ROM boots MicroPython, which runs main.py
        assert b"I main boot firmware=test" in _read_until(s, b"firmware=test\r\n")
        time.sleep(0.2)
        s.sendall(b"\r\x03")
        assert _read_until(s, b">>> ").endswith(b"KeyboardInterrupt: \r\n" + BANNER + b">>> ")
        s.sendall(b"import machine; machine.reset()\r")  # the REPL resets the board
        assert b"rst:0x1 (POWERON_RESET)" in _read_until(s, b"firmware=test\r\n")
        s.sendall(b"\x03\x04")  # Ctrl-D at the friendly prompt: soft reboot, main.py again
        assert _read_until(s, b"firmware=test\r\n").endswith(b"MPY: soft reboot\r\nI main boot firmware=test\r\n")


def test_a_blank_board_says_what_its_rom_says(tmp_path):
    sim = SerialSim(tmp_path, flashed=False)
    try:
        with _session(sim.url) as s:
            sim.type("r")
            expected = bootloader.boot_check(sim.flash).console.encode()
            assert b"invalid header: 0xffffffff" in expected
            assert _read_until(s, b"0xffffffff\r\n") == expected
            s.sendall(b"\r\x03\r\x01")  # no MicroPython: nothing answers (deploy's test has the error)
            s.settimeout(1)
            with pytest.raises(socket.timeout):
                s.recv(100)
    finally:
        sim.stop()


def test_a_second_tool_finds_the_port_busy(board):
    with _session(board.url) as s:
        s.sendall(b"\r\x03")
        _read_until(s, b">>> ")
        code, out = mpremote(board, "fs", "ls")
        assert code != 0 and re.search("Connection reset by peer|socket disconnected", out), out  # turned away
    code, out = mpremote(board, "fs", "ls")  # the first tool left: the port is free again
    assert code == 0, out


def test_mpremote_over_a_pty(tmp_path):
    sim = SerialSim(tmp_path, serial="pty")
    try:
        assert sim.url.startswith("/dev/pts/")
        code, out = mpremote(sim, "exec", "print(sum(range(10)))", "+", "fs", "ls")
        assert code == 0 and "45" in out and "boot.py" in out, out
        code, out = mpremote(sim, "exec", "print('x' * 30000)")  # more than a pty buffers at once
        assert code == 0 and out.count("x") == 30000, out[-300:]
    finally:
        sim.stop()


def test_the_board_runs_until_sigterm(board):
    assert board.proc.poll() is None
    out = board.stop()
    assert board.proc.returncode == 0 and "board stopped after" in out


def test_serial_mode_refuses_what_only_the_scripted_board_takes(tmp_path):
    done = subprocess.run([EARSHOT, "sim", "--serial", "tcp:127.0.0.1:0", "--press", "3", "--board-dir",
                           tmp_path / "b"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "--press does not go with --serial" in done.stderr


def test_flashing_with_the_stub_erases_the_filesystem_too(board, tmp_path):
    code, out = mpremote(board, "fs", "touch", ":keepsake.txt")
    assert code == 0 and (board.board_dir / "keepsake.txt").exists(), out
    image = make_micropython_image(tmp_path / "again.bin")
    done = tool("earshot", "flash", "--port", board.url, "--firmware", image)  # esptool's stub: a full erase
    assert done.returncode == 0 and "Flash memory erased successfully" in done.stdout, done.stdout + done.stderr
    code, out = mpremote(board, "fs", "ls")
    assert code == 0 and out.split("ls :")[1].split() == ["139", "boot.py"], out  # a new filesystem


def test_boot_py_prints_before_the_prompt(board, tmp_path):
    # As on a board: a soft reset runs boot.py, whose output comes before the REPL's prompt.
    (tmp_path / "boot.py").write_text('print("hello from boot.py")\n')
    assert mpremote(board, "fs", "cp", tmp_path / "boot.py", ":boot.py")[0] == 0
    code, out = mpremote(board, "exec", "print(6 * 7)")  # mpremote soft-resets first
    assert code == 0 and out.strip() == "42", out
    with _session(board.url) as s:
        s.sendall(b"\r\x03\r\x01")
        _read_until(s, b"raw REPL; CTRL-B to exit\r\n>")
        s.sendall(b"\x04")
        assert _read_until(s, b">") == b"OK\r\nMPY: soft reboot\r\nhello from boot.py\r\nraw REPL; CTRL-B to exit\r\n>"


def test_dtr_and_rts_reach_en_and_boot_over_rfc2217(tmp_path):
    # The dev boards' auto-reset circuit: esptool's classic sequence boots the ROM's download
    # mode; an RTS pulse alone (monitor --reset) boots the flash.
    import serial

    sim = SerialSim(tmp_path, serial="rfc2217:127.0.0.1:0")
    try:
        conn = serial.serial_for_url(sim.url, timeout=5)
        conn.dtr, conn.rts = False, True  # EN low
        time.sleep(0.1)
        conn.dtr, conn.rts = True, False  # GPIO0 low as EN rises
        time.sleep(0.05)
        conn.dtr = False
        assert conn.read_until(b"waiting for download\r\n").endswith(
            b"boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n")
        conn.rts = True
        time.sleep(0.1)
        conn.rts = False
        assert conn.read_until(b">>> ").endswith(BANNER + b">>> ")  # MicroPython, no main.py yet
        conn.close()
    finally:
        sim.stop()
