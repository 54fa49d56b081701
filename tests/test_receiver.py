# `earshot receive`: what a board's bytes turn into on disk, and what the receiver does
# with bytes that are not a well-behaved board. Clients are TLS sockets holding the
# credentials `earshot pair` made (tests/test_pairing.py attacks the pairing itself).
import datetime
import json
import os
import random
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import wave

import pytest

from host_tools import pairing, receiver
from host_tools.cli import main
from host_tools.paths import REPO
from host_tools.receiver import ReceiverThread

FORMAT = {"rate": 16000, "width": 2, "channels": 1}
# The board's chunk header, timestamp space-padded as firmware/earshot/link.py sends it.
CHUNK_HEAD = b'{"type":"audio-chunk","data":{"rate":16000,"width":2,"channels":1,"timestamp":       %3d},"payload_length":%d}\n'


def event(kind, data=None, payload=b"", extra=None):
    # extra: a dict sent as data_length bytes (merged over data by the receiver).
    head = {"type": kind}
    if data is not None:
        head["data"] = data
    tail = b""
    if extra is not None:
        tail = json.dumps(extra).encode()
        head["data_length"] = len(tail)
    if payload:
        head["payload_length"] = len(payload)
    return json.dumps(head).encode() + b"\n" + tail + payload


def hello(device="earshot-sim"):
    return event("hello", {"device": device, "firmware": "0.1.0"})


def start(session=1, trigger="button", **fmt):
    return event("audio-start", {**FORMAT, **fmt, "timestamp": 120, "session": session, "trigger": trigger})


def chunk(pcm, **fmt):
    return event("audio-chunk", {**FORMAT, **fmt, "timestamp": 0}, pcm)


def stop(dropped=0):
    return event("audio-stop", {"timestamp": 2000, "dropped": dropped})


BOARDS = ("earshot-sim", "second", "a", "b")  # the device names the tests' clients use
STATE = None  # the receivers' state folder, with every board of BOARDS paired (fixture below)


@pytest.fixture(scope="module", autouse=True)
def paired_boards(tmp_path_factory):
    global STATE
    STATE = tmp_path_factory.mktemp("receiver-state")
    registry = pairing.Registry(STATE)
    for name in BOARDS:
        registry.pair(name)


def receiver_thread(recordings, log):
    # Wake-word verification has its own tests (test_verify.py): here any audio is stored.
    return ReceiverThread(recordings=recordings, log=log, state=STATE, verify=False)


class Client:
    # A paired board: the device's certificate, the receiver's pinned.
    def __init__(self, port, device="earshot-sim"):
        ctx = pairing.client_context(pairing.load_bundle(pairing.Registry(STATE).bundle(device)))
        raw = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.sock = ctx.wrap_socket(raw, server_hostname=pairing.RECEIVER_NAME)

    def send(self, *frames):
        self.sock.sendall(b"".join(frames))

    def sync(self):
        # A pong means the receiver has handled everything sent before the ping. Returns
        # the events it sent before the pong (wake verdicts).
        self.send(event("ping"))
        got = b""
        while not got.endswith(receiver.PONG):
            data = self.sock.recv(4096)
            assert data, f"closed by the receiver; it had sent {got!r}"
            got += data
        return [json.loads(line) for line in got.splitlines()[:-1]]

    def closed_by_server(self):
        # True once the receiver ends the connection (whatever it sent before).
        try:
            while self.sock.recv(4096):
                pass
            return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    def close(self):
        self.sock.close()


@pytest.fixture
def log():
    return []


@pytest.fixture
def rx(tmp_path, log):
    with receiver_thread(tmp_path / "rec", log.append) as r:
        yield r


@pytest.fixture
def client(rx):
    c = Client(rx.port)
    yield c
    c.close()


def files(rx_dir):
    # The recordings, without the session log (metadata only: checked on its own).
    return sorted(p.name for p in rx_dir.iterdir() if p.name != receiver.SESSION_LOG) if rx_dir.exists() else []


def wait_for(predicate, timeout=3.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def lines(log, prefix):
    return [line for line in log if line.startswith(prefix)]


def test_session_is_stored_bit_for_bit_with_metadata(rx, client, tmp_path, log):
    pcm = random.Random(1).randbytes(640 * 10)
    client.send(hello(), start(session=3, trigger="button"))
    for i in range(10):
        client.send(CHUNK_HEAD % (20 * i, 640) + pcm[640 * i:640 * (i + 1)])
    client.send(stop(dropped=2))
    client.sync()

    (meta,) = rx.sessions
    stem = meta["wav"][:-len(".wav")]
    assert files(tmp_path / "rec") == [f"{stem}.json", f"{stem}.wav"]
    with wave.open(str(tmp_path / "rec" / meta["wav"])) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes() + 1) == pcm
    assert json.loads((tmp_path / "rec" / f"{stem}.json").read_text()) == meta
    (logged,) = [json.loads(line) for line in (tmp_path / "rec" / receiver.SESSION_LOG).read_text().splitlines()]
    assert logged == {"logged": logged["logged"], "event": "saved", **meta}
    start_time = datetime.datetime.fromisoformat(meta["start"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - start_time).total_seconds() < 5
    assert stem == f"earshot-sim-{start_time:%Y%m%d-%H%M%S}-3"
    assert {k: v for k, v in meta.items() if k not in ("start", "wav")} == {
        "device": "earshot-sim", "session": 3, "trigger": "button", "device_timestamp_ms": 120,
        "duration_s": 0.2, "samples": 3200, "rate": 16000, "width": 2, "channels": 1,
        "dropped_frames": 2}
    saved = lines(log, "receiver session saved")
    assert saved == [f"receiver session saved device=earshot-sim session=3 file={stem}.wav "
                     f"duration_s=0.20 dropped=2 peer=127.0.0.1:{client.sock.getsockname()[1]}"]


def test_ping_gets_pong_with_or_without_data(client):
    client.send(hello())
    client.sync()
    client.send(event("ping", {"any": [1, 2]}))
    assert client.sock.recv(100) == b'{"type":"pong"}\n'


def test_data_length_is_merged_over_inline_data(rx, client):
    client.send(event("hello", {"device": "wrong name!"}, extra={"device": "earshot-sim", "firmware": "x"}),
                event("audio-start", {**FORMAT, "session": 1, "trigger": "wake"}, extra={"session": 9, "timestamp": 5}),
                event("audio-chunk", {}, b"\x01\x02" * 8, extra={**FORMAT, "timestamp": 0}),
                stop())
    client.sync()
    (meta,) = rx.sessions
    assert (meta["device"], meta["session"], meta["device_timestamp_ms"], meta["samples"]) == ("earshot-sim", 9, 5, 8)


def test_limits_are_inclusive(rx, client):
    # A header line of exactly 8 KiB and a payload of exactly 64 KiB are accepted.
    client.send(hello())
    head = b'{"type":"ping","data":{"pad":"%s"}}'
    client.send(head % (b"x" * (receiver.MAX_HEADER - len(head) + 2)) + b"\n")
    assert client.sock.recv(100) == receiver.PONG
    client.send(start(), chunk(b"\x00\x01" * (receiver.MAX_PAYLOAD // 2)), stop())
    client.sync()
    assert rx.sessions[0]["samples"] == receiver.MAX_PAYLOAD // 2


def test_dropped_connection_mid_session_stores_nothing(rx, client, tmp_path, log):
    client.send(hello(), start(), chunk(b"\x00\x01" * 320))
    client.sync()
    assert [n for n in files(tmp_path / "rec") if n.endswith(".wav.part")]
    client.close()
    wait_for(lambda: lines(log, "receiver closed"))
    assert rx.wait_idle(2)
    assert files(tmp_path / "rec") == [] and rx.sessions == []
    assert lines(log, "receiver session discarded device=earshot-sim session=1 reason=")


def test_server_stop_mid_session_stores_nothing(tmp_path, log):
    with receiver_thread(tmp_path, log.append) as r:
        c = Client(r.port)
        c.send(hello(), start(), chunk(b"\x00\x01" * 320))
        c.sync()
    assert files(tmp_path) == []
    assert lines(log, "receiver session discarded") and c.closed_by_server()
    c.close()


def test_silent_connection_is_closed_and_its_session_discarded(rx, client, tmp_path, log, monkeypatch):
    monkeypatch.setattr(receiver, "IDLE_TIMEOUT_S", 0.2)
    client.send(hello(), start())
    assert client.closed_by_server()
    wait_for(lambda: lines(log, "receiver closed"))
    assert files(tmp_path / "rec") == []
    assert 'reason="silent for 0.2 s"' in lines(log, "receiver closed")[0]


NEST = b"[" * (receiver.MAX_HEADER - 1) + b"\n"
BAD_FRAMES = {
    "not json": b"hello there\n",
    "not an object": b'["type", "ping"]\n',
    "nested too deep": NEST,
    "no type": b'{"data":{}}\n',
    "type not a string": b'{"type":7}\n',
    "data not an object": b'{"type":"ping","data":[1]}\n',
    "header over 8 KiB": b'{"type":"ping","pad":"' + b"x" * receiver.MAX_HEADER + b'"}\n',
    "header without newline over 8 KiB": b"x" * (2 * receiver.MAX_HEADER + 100),
    "payload over 64 KiB": b'{"type":"audio-chunk","payload_length":65537}\n',
    "data over 8 KiB": b'{"type":"ping","data_length":8193}\n',
    "negative length": b'{"type":"ping","payload_length":-1}\n',
    "length not an integer": b'{"type":"ping","payload_length":"12"}\n',
    "data_length not JSON": b'{"type":"ping","data_length":3}\nabc',
}
TRUNCATED = {
    "header": b'{"type":"audio-chunk",',
    "data": b'{"type":"ping","data_length":20}\n{"a":',
    "payload": CHUNK_HEAD % (0, 640) + b"\x00" * 100,
}


@pytest.mark.parametrize("bad", list(BAD_FRAMES.values()) + list(TRUNCATED.values()),
                         ids=list(BAD_FRAMES) + [f"truncated {k}" for k in TRUNCATED])
def test_bad_frame_closes_only_that_connection(rx, client, tmp_path, log, bad):
    client.send(hello(), start(), chunk(b"\x00\x01" * 320), bad)
    if bad in TRUNCATED.values():
        client.sock.unwrap().shutdown(socket.SHUT_WR)  # close_notify, then EOF
    assert client.closed_by_server()
    wait_for(lambda: lines(log, "receiver closed"))
    (closed,) = lines(log, "receiver closed")
    assert "closed by peer" not in closed and "internal error" not in closed
    assert files(tmp_path / "rec") == []

    other = Client(rx.port, "second")
    other.send(hello("second"), start(), chunk(b"\x00\x01" * 4), stop())
    other.sync()
    other.close()
    assert [m["device"] for m in rx.sessions] == ["second"]


@pytest.mark.parametrize("name", ["../etc", "a" * 33, "", "dev ice", "dévice", 5, None])
def test_bad_device_name_is_refused(client, log, name):
    client.send(event("hello", {"device": name, "firmware": "1"}), event("ping"))
    assert client.closed_by_server()
    wait_for(lambda: lines(log, "receiver closed"))
    assert "bad device name" in lines(log, "receiver closed")[0]


def test_events_before_hello_are_refused(client):
    client.send(event("ping"))
    assert client.closed_by_server()


@pytest.mark.parametrize("bad_chunk", [chunk(b"\x00\x01" * 4, rate=8000),
                                       chunk(b"\x00\x01" * 4, channels=2),
                                       event("audio-chunk", {"timestamp": 0}, b"\x00\x01"),
                                       chunk(b"\x00\x01\x02")],
                         ids=["rate", "channels", "no format", "half sample"])
def test_chunk_not_matching_the_session_discards_it(rx, client, tmp_path, log, bad_chunk):
    client.send(hello(), start(), chunk(b"\x00\x01" * 4), bad_chunk, chunk(b"\x00\x01" * 4), stop())
    client.sync()  # the connection stays up
    assert files(tmp_path / "rec") == [] and rx.sessions == []
    assert len(lines(log, "receiver session discarded")) == 1
    assert len(lines(log, "receiver ignored")) == 1  # the session's later events, once


def test_unsupported_audio_start_closes_the_connection(client, tmp_path):
    client.send(hello(), start(width=4))
    assert client.closed_by_server()
    assert files(tmp_path / "rec") == []


def test_chunks_outside_a_session_are_logged_once(rx, client, log):
    client.send(hello(), *[chunk(b"\x00\x01")] * 5, stop(), start(), chunk(b"\x00\x01"), stop())
    client.sync()
    assert len(lines(log, "receiver ignored")) == 1
    assert rx.sessions[0]["samples"] == 1


def test_second_audio_start_discards_the_first(rx, client, tmp_path, log):
    client.send(hello(), start(session=1), chunk(b"\x00\x01" * 4),
                start(session=2), chunk(b"\x00\x01" * 2), stop())
    client.sync()
    assert [(m["session"], m["samples"]) for m in rx.sessions] == [(2, 2)]
    assert len(files(tmp_path / "rec")) == 2
    assert lines(log, "receiver session discarded device=earshot-sim session=1 ")


def test_name_collisions_never_overwrite(rx, client, tmp_path, monkeypatch):
    fixed = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    monkeypatch.setattr(receiver, "_now", lambda: fixed)
    (tmp_path / "rec" / "earshot-sim-20240102-030405-1-3.json").write_text("{}")
    for n in range(1, 4):
        client.send(start(session=1) if n > 1 else hello() + start(session=1),
                    chunk(b"\x00\x01" * n), stop())
    client.sync()
    assert [m["wav"] for m in rx.sessions] == ["earshot-sim-20240102-030405-1.wav",
                                                "earshot-sim-20240102-030405-1-2.wav",
                                                "earshot-sim-20240102-030405-1-4.wav"]
    for n, meta in enumerate(rx.sessions, 1):
        with wave.open(str(tmp_path / "rec" / meta["wav"])) as w:
            assert w.getnframes() == n


def test_two_boards_stream_at_once(rx, tmp_path):
    a, b = Client(rx.port, "a"), Client(rx.port, "b")
    a.send(hello("a"), start())
    b.send(hello("b"), start())
    for _ in range(3):
        a.send(chunk(b"\x01\x00" * 2))
        b.send(chunk(b"\x02\x00" * 3))
    a.send(stop())
    b.send(stop())
    a.sync(), b.sync()
    assert sorted((m["device"], m["samples"]) for m in rx.sessions) == [("a", 6), ("b", 9)]
    a.close(), b.close()


@pytest.mark.parametrize("umask", [0, 0o277], ids=["open umask", "owner-only umask"])
def test_files_are_private_whatever_the_umask(tmp_path, log, umask):
    old = os.umask(umask)
    try:
        with receiver_thread(tmp_path / "new" / "rec", log.append) as r:
            c = Client(r.port)
            c.send(hello(), start(), chunk(b"\x00\x01"), stop())
            c.sync()
            c.close()
    finally:
        os.umask(old)
    rec = tmp_path / "new" / "rec"
    assert stat.S_IMODE(rec.stat().st_mode) == 0o700
    assert sorted(stat.S_IMODE(p.stat().st_mode) for p in rec.iterdir()) == [0o600] * 3  # wav, json, log


def test_wait_idle_waits_for_the_session_and_the_connection(rx, client):
    client.send(hello(), start())
    client.sync()
    assert not rx.wait_idle(0.05)
    client.send(stop())
    client.sync()
    assert not rx.wait_idle(0.05)  # the board may still send: its link is open
    client.close()
    assert rx.wait_idle(2) and len(rx.sessions) == 1


def test_pause_drops_connections_and_resume_listens_on_the_same_port(rx, client, tmp_path):
    port = rx.port
    client.send(hello(), start(), chunk(b"\x01\x00" * 160))
    client.sync()
    rx.pause()
    assert client.closed_by_server()
    assert files(tmp_path / "rec") == []  # the open session is discarded
    rx.resume()
    assert rx.port == port
    again = Client(port)
    again.send(hello())
    again.sync()
    again.close()


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1", "127.0.0.1:99999", ":10700", "host:port"])
def test_bad_listen_is_one_line_and_exit_1(capsys, tmp_path, listen):
    assert main(["receive", "--listen", listen, "--recordings", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("earshot: --listen") and "127.0.0.1:10700" in err


def test_port_in_use_is_one_line_and_exit_1(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["receive", "--listen", f"127.0.0.1:{port}", "--recordings", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port is in use" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signalled_and_exits_0(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-m", "host_tools", "receive", "--listen", "127.0.0.1:0",
                             "--recordings", str(tmp_path / "rec"), "--state", str(STATE), "--no-verify",
                             "--web", "127.0.0.1:0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listening = proc.stdout.readline()
        assert listening.startswith("receiver listening on=127.0.0.1:")
        c = Client(int(listening.split()[2].rsplit(":", 1)[1]))
        c.send(hello(), start())
        c.sync()
        proc.send_signal(sig)
        assert proc.wait(5) == 0
        out = proc.stdout.read()
        assert "receiver session discarded" in out and out.endswith("receiver stopped\n")
        assert proc.stderr.read() == ""
        assert files(tmp_path / "rec") == []
        c.close()
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
