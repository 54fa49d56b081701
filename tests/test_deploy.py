# `earshot deploy` against the virtual board's serial port: what it lists, what it writes
# (compiled for the board's .mpy version and architecture), what it leaves alone, what it
# never prints, and the errors a maker meets.
import json
import os
import pty
import re
import subprocess

import pytest
from serial_sim import EARSHOT, SerialSim, tool, wait_for

from host_tools import pairing

PASSWORD = "tr0ub4dor&3"



def deploy(sim, *args, password=None):
    done = tool("earshot", "deploy", "--port", sim.url, *args,
                env={"EARSHOT_WIFI_PASSWORD": password} if password is not None else None)
    return done.returncode, done.stdout + done.stderr


def test_dry_run_lists_and_writes_nothing(board, tmp_path):
    creds = pairing.Registry(tmp_path / "state").pair("hall")
    code, out = deploy(board, "--dry-run", "--receiver", "192.168.1.20:10700", "--pairing", creds,
                       "--wifi-ssid", "home", password=PASSWORD)
    assert code == 0, out
    assert "+ earshot/app.mpy" in out and "+ main.py" in out and "+ pair/device.key" in out
    assert "setting wifi_password = (set, not shown)" in out and 'setting device = "hall"' in out
    assert PASSWORD not in out and "dry run, nothing written" in out
    assert sorted(p.name for p in board.board_dir.iterdir()) == ["boot.py"]


def test_only_what_changed_is_written_and_the_boards_own_settings_stay(board, tmp_path):
    code, out = deploy(board, "--no-reset", "--receiver", "10.0.0.5:10700", "--wifi-ssid", "home",
                       password=PASSWORD)
    assert code == 0, out
    assert "files written and verified" in out and PASSWORD not in out
    settings = json.loads((board.board_dir / "settings.json").read_text())
    assert settings["wifi_password"] == PASSWORD and settings["receiver_port"] == 10700
    assert (board.board_dir / "earshot" / "detector.mpy").read_bytes()[:1] == b"M"  # .mpy, not source
    assert not (board.board_dir / "earshot" / "detector.py").exists()

    settings["muted"] = True  # the firmware saved this itself
    (board.board_dir / "settings.json").write_text(json.dumps(settings))
    (board.board_dir / "earshot" / "app.py").write_text("stale = True\n")  # would shadow app.mpy
    code, out = deploy(board, "--no-reset", "--sensitivity", "high")
    assert code == 0, out
    assert "~ settings.json" in out and "- earshot/app.py" in out and "+ earshot/" not in out
    assert not (board.board_dir / "earshot" / "app.py").exists()
    settings = json.loads((board.board_dir / "settings.json").read_text())
    assert settings["muted"] is True and settings["sensitivity"] == "high" and settings["wifi_password"] == PASSWORD
    assert not (board.board_dir / "settings.json.new").exists()

    code, out = deploy(board, "--no-reset")
    assert code == 0 and "nothing written" in out, out


def test_source_copies_the_python_files(board):
    code, out = deploy(board, "--no-reset", "--source")
    assert code == 0, out
    assert (board.board_dir / "earshot" / "app.py").is_file() and not (board.board_dir / "earshot" / "app.mpy").exists()


@pytest.mark.parametrize("args, password, says", [
    (["--receiver", "nowhere"], None, "--receiver wants HOST:PORT"),
    (["--pairing", "/no/such/pairing"], None, "make the credentials with `earshot pair NAME`"),
    (["--wifi-ssid", "home"], None, "needs the password in $EARSHOT_WIFI_PASSWORD"),
    (["--wifi-ssid", "home"], "x" * 65, "longer than 64 characters"),
])
def test_bad_input_is_refused_before_the_board_is_touched(board, args, password, says):
    code, out = deploy(board, *args, password=password)
    assert code == 1 and says in out, out
    assert sorted(p.name for p in board.board_dir.iterdir()) == ["boot.py"]


def test_a_board_without_micropython(tmp_path):
    sim = SerialSim(tmp_path, flashed=False)
    try:
        code, out = deploy(sim)
        assert code == 1 and "no MicroPython REPL answers" in out and "earshot flash" in out, out
    finally:
        sim.stop()


def test_a_deploy_cut_short_leaves_the_old_firmware_whole(board):
    code, out = deploy(board, "--no-reset", "--source")
    assert code == 0, out
    sources = {p.name: p.read_bytes() for p in (board.board_dir / "earshot").glob("*.py")}
    # Now compiled: the cable is pulled (the board stops) while the modules are written.
    proc = subprocess.Popen([EARSHOT, "deploy", "--port", board.url, "--no-reset"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    for line in proc.stdout:
        if "writing earshot/frontend.mpy" in line:
            board.stop()
            break
    out = proc.stdout.read()
    assert proc.wait(30) == 1 and "the board stopped answering" in out, out
    assert {p.name: p.read_bytes() for p in (board.board_dir / "earshot").glob("*.py")} == sources
    assert not list((board.board_dir / "earshot").glob("*.mpy"))  # only .mpy.new files, which nothing imports


def test_the_next_deploy_clears_what_one_cut_short_left(board):
    wait_for(lambda: (board.board_dir / "boot.py").exists(), what="the board's first boot")
    (board.board_dir / "settings.json.new").write_text('{"wifi_password": "old secret"}')
    (board.board_dir / "pair").mkdir()
    (board.board_dir / "pair" / "device.key.new").write_bytes(b"half a key")
    code, out = deploy(board, "--no-reset", "--wifi-ssid", "home", password=PASSWORD)
    assert code == 0 and "- pair/device.key.new (left by a deploy cut short)" in out, out
    left = [p.name for p in board.board_dir.rglob("*.new")]
    assert left == [] and "home" in (board.board_dir / "settings.json").read_text()


def test_without_wifi_settings_the_board_says_so_and_stays_offline(board):
    # As a real board: no SSID, no network, whatever the receiver setting.
    code, out = deploy(board, "--receiver", "127.0.0.1:9")
    assert code == 0, out
    assert "| E main wifi error=no_ssid action=set_wifi_ssid_in_settings" in out
    assert "new=offline why=receiver_unreachable" in out and "it reported errors above" in out


def test_a_full_filesystem_is_found_before_anything_is_written(board):
    # Someone kept recordings on the board: its 2 MiB filesystem has no room for the firmware.
    wait_for(lambda: (board.board_dir / "boot.py").exists(), what="the board's first boot")
    (board.board_dir / "big.wav").write_bytes(b"\0" * (2000 * 1024))
    code, out = deploy(board, "--no-reset")
    assert code == 1 and "KiB free and this deploy needs" in out and "fs rm" in out, out
    assert sorted(p.name for p in board.board_dir.iterdir()) == ["big.wav", "boot.py"]


def test_a_file_the_board_cannot_write_is_named(board):
    wait_for(lambda: (board.board_dir / "boot.py").exists(), what="the board's first boot")
    (board.board_dir / "main.py.new").mkdir()  # in the way of the new main.py
    code, out = deploy(board, "--no-reset")
    assert code == 1 and "the board cannot write main.py.new: Is a directory" in out, out
    assert not (board.board_dir / "main.py").exists()


def test_a_terminal_sees_each_files_progress(board):
    # A slow UART takes seconds per file: on a terminal, deploy counts up.
    main, follower = pty.openpty()
    proc = subprocess.Popen([EARSHOT, "deploy", "--port", board.url, "--no-reset"], stdout=follower,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    shown = b""
    while chunk := _read(main):
        shown += chunk
    os.close(main)
    assert proc.wait(60) == 0, shown
    assert re.search(rb"\r  writing hey_jarvis.eww \.\.\. [1-9]\d?%", shown) and b"hey_jarvis.eww ... 100% ok" in shown


def _read(fd):
    try:
        return os.read(fd, 65536)
    except OSError:  # the other end closed: EIO on a pty
        return b""


@pytest.mark.parametrize("port, says", [("/dev/ttyUSB97", "no such port /dev/ttyUSB97"),
                                        ("bogus://x", "neither a serial port nor a URL pyserial knows")])
def test_a_port_that_cannot_be_opened_says_why(port, says):
    done = tool("earshot", "deploy", "--port", port)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
