# Pairing and the attacks it must stop (DESIGN.md P5): only the paired receiver gets audio,
# only paired boards get in, a recorded handshake cannot be replayed, and unpairing sticks.
import base64
import socket
import ssl
import stat
import threading
import time

import pytest

from host_tools import pairing
from host_tools.cli import main
from host_tools.receiver import PONG, ReceiverThread
from tests.simboard import sim
from tests.test_receiver import chunk, hello, start, stop


def _pair(state, device):
    return pairing.load_bundle(pairing.Registry(state).pair(device))


def _connect(port, bundle, check_receiver=True):
    ctx = pairing.client_context(bundle)
    if not check_receiver:  # an attacker does not care who answers
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=3),
                           server_hostname=pairing.RECEIVER_NAME)


def _refused(sock):
    # Nothing comes back to a refused client, not even a pong: the connection just ends.
    try:
        sock.sendall(hello("kitchen") + b'{"type":"ping"}\n')
        return sock.recv(100) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


@pytest.fixture
def rx(tmp_path):
    log = []
    _pair(tmp_path / "state", "kitchen")
    with ReceiverThread(recordings=tmp_path / "rec", log=log.append, state=tmp_path / "state", verify=False) as r:
        r.log = log
        yield r


def _wait_log(log, prefix, timeout=3.0):
    end = time.monotonic() + timeout
    while not [line for line in log if line.startswith(prefix)]:
        assert time.monotonic() < end, log
        time.sleep(0.005)
    return [line for line in log if line.startswith(prefix)]


def test_pair_writes_private_credentials_and_prints_no_secret(tmp_path, capsys):
    assert main(["pair", "kitchen", "--state", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "s" / "pairings" / "kitchen"
    assert sorted(p.name for p in folder.iterdir()) == sorted(pairing.BOARD_FILES)
    for path in [tmp_path / "s", folder, *folder.iterdir(), *(tmp_path / "s").glob("receiver.*")]:
        assert stat.S_IMODE(path.stat().st_mode) in (0o600, 0o700), path
    key = (folder / "device.key").read_bytes()
    for form in (key.hex(), base64.b64encode(key).decode()[:40]):
        assert form not in out
    assert main(["pair", "--list", "--state", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out.startswith("kitchen  paired ")


@pytest.mark.parametrize("argv, message", [
    (["pair", "kitchen"], "already paired"),
    (["pair", "../etc"], "bad device name"),
    (["unpair", "hall"], "'hall' is not paired with this receiver (paired: kitchen)"),
])
def test_pairing_mistakes_are_one_clear_line(tmp_path, capsys, argv, message):
    _pair(tmp_path / "s", "kitchen")
    assert main(argv + ["--state", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_paired_board_streams(rx, tmp_path):
    sock = _connect(rx.port, pairing.load_bundle(tmp_path / "state" / "pairings" / "kitchen"))
    sock.sendall(hello("kitchen") + start() + chunk(b"\x01\x00" * 160) + stop() + b'{"type":"ping"}\n')
    assert sock.recv(100) == PONG
    sock.close()
    assert [m["device"] for m in rx.sessions] == ["kitchen"]


def test_a_board_of_another_receiver_is_refused(rx, tmp_path):
    # Same device name, credentials from another receiver (not signed by this one).
    stranger = _pair(tmp_path / "elsewhere", "kitchen")
    assert _refused(_connect(rx.port, stranger, check_receiver=False))
    assert "TLS handshake failed" in _wait_log(rx.log, "receiver refused")[0]
    assert rx.sessions == [] and list((tmp_path / "rec").iterdir()) == []


def test_a_client_without_a_certificate_is_refused(rx):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", rx.port), timeout=3))
    assert _refused(sock)
    assert "TLS handshake failed" in _wait_log(rx.log, "receiver refused")[0]


def test_a_revoked_board_is_refused_even_mid_connection(rx, tmp_path):
    bundle = pairing.load_bundle(tmp_path / "state" / "pairings" / "kitchen")
    sock = _connect(rx.port, bundle)
    sock.sendall(hello("kitchen") + b'{"type":"ping"}\n')
    assert sock.recv(100) == PONG
    assert main(["unpair", "kitchen", "--state", str(tmp_path / "state")]) == 0
    assert not (tmp_path / "state" / "pairings" / "kitchen").exists()
    # the open connection may not start a session any more ...
    sock.sendall(start() + chunk(b"\x01\x00" * 160) + stop())
    assert sock.recv(100) == b""
    assert "this device was unpaired" in _wait_log(rx.log, "receiver closed")[0]
    # ... and the certificate is refused from now on, even if the name is paired again
    _pair(tmp_path / "state", "kitchen")
    assert _refused(_connect(rx.port, bundle))
    assert "not paired or revoked" in _wait_log(rx.log, "receiver refused")[0]
    assert rx.sessions == []


def test_a_recorded_handshake_cannot_be_replayed(rx, tmp_path):
    # A man in the middle records everything a paired board sends, session included, and
    # plays it back on a new connection: the receiver's fresh randoms make it worthless.
    recorded = bytearray()
    upstream_port = rx.port
    proxy = socket.create_server(("127.0.0.1", 0))

    def relay():
        down, _ = proxy.accept()
        up = socket.create_connection(("127.0.0.1", upstream_port))

        def copy(src, dst, keep):
            while data := src.recv(4096):
                keep and recorded.extend(data)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=copy, args=(up, down, False), daemon=True).start()
        copy(down, up, True)

    threading.Thread(target=relay, daemon=True).start()
    sock = _connect(proxy.getsockname()[1], pairing.load_bundle(tmp_path / "state" / "pairings" / "kitchen"))
    sock.sendall(hello("kitchen") + start() + chunk(b"\x01\x00" * 160) + stop() + b'{"type":"ping"}\n')
    assert sock.recv(100) == PONG
    sock.close()
    _wait_log(rx.log, "receiver closed")
    assert len(rx.sessions) == 1 and len(recorded) > 500

    replay = socket.create_connection(("127.0.0.1", rx.port), timeout=3)
    replay.sendall(bytes(recorded))
    replay.shutdown(socket.SHUT_WR)
    while replay.recv(4096):
        pass  # whatever the receiver says, it is not a session
    assert "TLS handshake failed" in _wait_log(rx.log, "receiver refused")[0]
    assert len(rx.sessions) == 1


def test_a_rogue_receiver_gets_no_audio_byte(tmp_path, capsys):
    # The board was paired with one receiver; another on the network (with its own keys,
    # even its own pairing for a board of that name) answers instead. The board's TLS
    # handshake fails, it stays offline (amber) and sends nothing but its ClientHello.
    genuine = pairing.Registry(tmp_path / "genuine").pair("earshot")
    _pair(tmp_path / "rogue", "earshot")
    log = []
    with ReceiverThread(recordings=tmp_path / "stolen", log=log.append, state=tmp_path / "rogue") as rogue:
        run = sim(tmp_path, capsys, "--receiver", f"127.0.0.1:{rogue.port}", "--pairing", genuine,
                  "--press", 2.0)
    assert run.code == 0, run.err
    assert rogue.sessions == [] and not [line for line in log if "hello" in line or "connected" in line]
    assert run.sent() == []  # only TLS set-up left the board
    assert sum(e["bytes"] for e in run.of("net") if e["dir"] == "out") < 1024
    serial = run.serial()
    assert not any(line.startswith("I link up") for line in serial)
    assert any(line.startswith("W link down") and "not_correctly_signed" in line for line in serial)
    assert any("press_ignored state=offline" in line for line in serial)


def test_an_unpaired_board_never_connects(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--pairing", "none", "--press", 2.0)
    assert run.code == 0, run.err
    assert run.of("net") == []
    assert any(line.startswith("E main pairing error=missing_pair/receiver.crt") for line in run.serial())
    assert any("press_ignored state=offline" in line for line in run.serial())


def test_the_board_and_the_receiver_log_no_secret(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--press", 2.0)
    key = (tmp_path / "board" / "pair" / "device.key").read_bytes()
    text = "\n".join(run.serial()) + run.out + run.err
    assert key.hex()[:32] not in text and base64.b64encode(key).decode()[:32] not in text
    assert len(run.sessions()) == 1


GARBAGE = [b"not json at all\n", b'["type", "pong"]\n', b'{"type": 7}\n', b'"just a string"\n',
           b'{"type":"wake-verdict","data":[1,2]}\n', b'{"type":"wake-verdict","data":{"session":"x","verdict":5}}\n',
           b"\xff\xfe\x00garbage\n", b'{"type":"pong"', b"x" * 3000 + b"\n"]


def test_a_paired_receiver_sending_garbage_never_crashes_the_board(tmp_path, capsys):
    # Each connection gets one kind of bad frame from a receiver that holds the right keys
    # (a buggy one, or a truncated frame). The board says so in one line, drops that
    # connection and reconnects: its link task never dies.
    registry = pairing.Registry(tmp_path / "state")
    bundle = registry.pair("earshot")
    tls = registry.server_context()
    server = socket.create_server(("127.0.0.1", 0))
    served = []

    def serve():
        for bad in GARBAGE:
            conn, _ = server.accept()
            with tls.wrap_socket(conn, server_side=True) as conn:
                conn.recv(4096)  # hello
                conn.sendall(bad)
                served.append(bad)
                time.sleep(0.05)

    threading.Thread(target=serve, daemon=True).start()
    with server:
        run = sim(tmp_path, capsys, "--receiver", "127.0.0.1:%d" % server.getsockname()[1], "--pairing", bundle,
                  wav=_room(tmp_path, 400))
    assert run.code == 0, run.err
    serial = run.serial()
    assert not [line for line in serial if "Traceback" in line or "task_failed" in line], serial
    assert len(served) == len(GARBAGE)
    assert sum(line.startswith("I link up") for line in serial) == len(GARBAGE)
    assert sum(line.startswith("W link down") for line in serial) >= len(GARBAGE) - 1


def _room(tmp_path, seconds):
    from tests.simboard import make_wav

    return make_wav(tmp_path / "room.wav", seconds)
