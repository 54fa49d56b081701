# `earshot monitor` against a serial port that is a TCP socket (pyserial's socket://), as the
# virtual board's serial side will be: timestamps, the status line, --log, --filter,
# --until/--timeout, and riding out a reset that drops the connection.
import os
import re
import socket
import threading
import time

from host_tools import monitor
from host_tools.cli import main

BOOT = [b"I main boot firmware=earshot-0.1", b"I link up receiver=192.168.1.2:10700",
        b"I app state old=boot new=idle why=receiver_up", b"I app state old=idle new=streaming why=wake",
        b"I app wake score=251", b"I app session_end why=end_of_speech",
        b"I app session_sent frames=250 dropped=3", b"I app state old=streaming new=idle why=session_over"]


def _board(sessions):
    # A serial port on TCP: each accepted connection gets the next list of lines, then closes
    # (a reset or unplug), except the last, which stays open.
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        for i, lines in enumerate(sessions):
            conn, _ = server.accept()
            time.sleep(0.2)  # the board boots after the port opens (pyserial empties its input on open)
            for line in lines:
                conn.sendall(line + b"\r\n")
                time.sleep(0.01)
            if i < len(sessions) - 1:
                conn.close()
            else:
                time.sleep(5)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, f"socket://127.0.0.1:{server.getsockname()[1]}"


def test_status_follows_the_log():
    status = monitor.Status()
    for line in BOOT:
        status.feed(line.decode())
    assert status.line() == ("[state idle | ring dark | link up | sessions 1 | last wake score 251 | "
                             "dropped frames 3]")
    status.feed("I app state old=idle new=muted why=long_press")
    assert "ring red" in status.line()


def test_until_matches_logs_and_filters(tmp_path, capsys):
    server, url = _board([BOOT])
    with server:
        code = main(["monitor", "--port", url, "--until", "session_sent", "--timeout", "10",
                     "--log", str(tmp_path / "board.log"), "--filter", " app "])
    out = capsys.readouterr().out
    assert code == 0
    said, *shown = out.strip().splitlines()
    assert said == f"monitor: listening on {url} (Ctrl-C ends)"
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} I app ", line) for line in shown), shown
    assert shown[-1].endswith("session_sent frames=250 dropped=3")
    logged = (tmp_path / "board.log").read_text().splitlines()
    assert len(logged) == 7 and logged[0].endswith("I main boot firmware=earshot-0.1")  # unfiltered


def test_a_reset_that_drops_the_port_is_ridden_out(capsys):
    server, url = _board([BOOT[:2], BOOT])
    with server:
        code = main(["monitor", "--port", url, "--until", "why=session_over", "--timeout", "10"])
    out = capsys.readouterr().out
    assert code == 0 and "monitor: lost socket://" in out and out.count("I main boot") == 2


def test_timeout_without_a_match_exits_1(capsys):
    server, url = _board([BOOT])
    with server:
        t0 = time.monotonic()
        code = main(["monitor", "--port", url, "--until", "never printed", "--timeout", "1"])
    assert code == 1 and time.monotonic() - t0 < 5
    assert "no line matched 'never printed' in time" in capsys.readouterr().out


def test_no_board_on_usb_is_one_clear_line(capsys, monkeypatch):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert main(["monitor"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no ESP32 board found on USB" in err and "--port" in err


def test_several_boards_ask_which(capsys, monkeypatch):
    from serial.tools import list_ports

    class Port:
        def __init__(self, device):
            self.device, self.vid, self.pid = device, 0x10C4, 0xEA60

    monkeypatch.setattr(list_ports, "comports", lambda: [Port("/dev/ttyUSB0"), Port("/dev/ttyUSB1")])
    assert main(["monitor"]) == 1
    assert "several boards found (/dev/ttyUSB0, /dev/ttyUSB1)" in capsys.readouterr().err


def test_reset_says_when_the_port_has_no_rts_line(capsys):
    server, url = _board([BOOT])
    with server:
        code = main(["monitor", "--port", url, "--reset", "--until", "why=session_over", "--timeout", "10"])
    assert code == 0 and "has no RTS line to reset the board with" in capsys.readouterr().out


def test_reset_on_a_pty_says_it_cannot(capsys):
    # A pty (the virtual board's other port) has no RTS line either; nothing pretends otherwise.
    main_fd, follower = os.openpty()
    try:
        code = main(["monitor", "--port", os.ttyname(follower), "--reset", "--timeout", "0.5"])
    finally:
        os.close(main_fd)
        os.close(follower)
    out = capsys.readouterr().out
    assert code == 0 and "has no RTS line to reset the board with" in out and "cannot open" not in out
