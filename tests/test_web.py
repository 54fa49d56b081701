# The receiver's web page over plain HTTP: what it shows, what it changes, and the attacks
# it must stop (an unauthenticated request gets no audio byte and no metadata, a forged
# delete fails, the log-in wall, path traversal, CSRF, the log-in rate limit, DNS
# rebinding). tests/test_web_browser.py drives it in a real browser.
import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import wave
import zipfile

import numpy as np
import pytest

from host_tools import recordings, trace
from host_tools.cli import main
from host_tools.errors import CommandError
from host_tools.paths import REPO
from host_tools.receiver import ReceiverThread
from host_tools.web import password, server, view
from tests.webtools import PASSWORD, Board, Http, receiver, set_password, wait_for


def _stored(rx):
    [meta] = recordings.sessions(rx.recordings)
    return meta, meta["wav"][:-4]


@pytest.fixture
def rx(tmp_path):
    with receiver(tmp_path) as r:
        yield r


@pytest.fixture
def locked(tmp_path):
    # A receiver whose page has a password; one session of kitchen stored.
    set_password(tmp_path / "state")
    with receiver(tmp_path) as r:
        board = Board(r.port, r.state, "kitchen")
        board.session()
        board.close()
        yield r


# --- what the page shows ---------------------------------------------------------------------


def test_the_page_shows_every_paired_board_and_its_live_state(rx):
    web = Http(rx.web_port)
    status, headers, body = web.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert 'data-board="kitchen" data-state="offline"' in page and 'data-board="hall" data-state="offline"' in page
    board = Board(rx.port, rx.state, "kitchen", reported="muted")
    board.sync()
    assert 'data-board="kitchen" data-state="muted"' in web.get("/")[2].decode()
    board.send(b'{"type": "state", "data": {"state": "idle"}}\n')
    board.start()
    board.sync()
    page = web.get("/")[2].decode()
    assert 'data-board="kitchen" data-state="streaming"' in page and "streaming now: button" in page
    board.stop()
    page = web.get("/")[2].decode()
    assert 'data-board="kitchen" data-state="idle"' in page and "1 session, 0 wakes rejected" in page
    board.close()
    wait_for(lambda: 'data-board="kitchen" data-state="offline"' in web.get("/")[2].decode(), what="offline")
    assert "offline since" in web.get("/")[2].decode()


def test_recordings_newest_first_with_player_export_and_retention(rx):
    board = Board(rx.port, rx.state, "kitchen")
    first = board.session(1.0, seed=1)
    board.session(0.5, seed=2, trigger="wake")
    rx.call(rx.receiver.note, {"event": "rejected", "device": "kitchen", "session": 3, "trigger": "wake",
                               "start": "2099-01-01T00:00:00.000+00:00", "sent_s": 1.3, "verify_score": 0.1,
                               "verify_cutoff": 0.5})
    web = Http(rx.web_port)
    page = web.get("/")[2].decode()
    rows = re.findall(r'<li class="rec (\w+)" data-id="([^"]+)"', page)
    stems = sorted(m["wav"][:-4] for m in recordings.sessions(rx.recordings))
    assert [kind for kind, _ in rows] == ["rejected", "stored", "stored"]
    assert rows[1][1] == stems[1] and rows[2][1] == stems[0]  # newest first
    assert "no audio was kept: nothing to play" in page
    assert "wake word not checked" in page and "button: no check needed" in page
    assert "kept for 30 days" in page
    assert page.count("<audio controls") == 2
    status, headers, body = web.get(f"/recordings/{stems[0]}/export")
    assert status == 200 and headers["Content-Disposition"] == f'attachment; filename="{stems[0]}.zip"'
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        assert sorted(z.namelist()) == [f"{stems[0]}.json", f"{stems[0]}.wav"]
        with wave.open(z.open(f"{stems[0]}.wav")) as w:
            assert w.readframes(w.getnframes()) == first.astype("<i2").tobytes()


def test_the_audio_answers_range_requests_so_the_player_can_seek(rx):
    board = Board(rx.port, rx.state, "kitchen")
    board.session(1.0)
    meta, stem = _stored(rx)
    whole = (rx.recordings / meta["wav"]).read_bytes()
    web = Http(rx.web_port)
    web.get("/")
    status, headers, body = web.get(f"/recordings/{stem}.wav")
    assert status == 200 and body == whole and headers["Content-Type"] == "audio/wav"
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = web.get(f"/recordings/{stem}.wav", headers={"Range": "bytes=1000-1999"})
    assert status == 206 and body == whole[1000:2000]
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(whole)}"


def test_delete_zeroes_unlinks_and_logs_like_the_cli(rx, monkeypatch):
    board = Board(rx.port, rx.state, "kitchen")
    board.session(1.0)
    meta, stem = _stored(rx)
    zeroed = []
    real_fsync = os.fsync

    def fsync(fd):  # what is on disk when the file is synced, just before the unlink
        zeroed.append(set(os.pread(fd, 1 << 20, 44)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    web = Http(rx.web_port)
    status, headers, _ = web.post(f"/recordings/{stem}/delete", {"csrf": web.csrf()})
    assert status == 303 and headers["Location"] == "/#recordings"
    assert zeroed == [{0}]
    assert sorted(p.name for p in rx.recordings.iterdir()) == [recordings.SESSION_LOG]
    last = json.loads((rx.recordings / recordings.SESSION_LOG).read_text().splitlines()[-1])
    assert last["event"] == "deleted" and last["reason"] == "deleted on the web page"
    assert last["session"] == meta["session"] and last["device"] == "kitchen"
    assert stem not in web.get("/")[2].decode().split('id="recordings"')[1]
    assert web.get(f"/recordings/{stem}.wav")[0] == 404


def test_unpair_revokes_the_board_and_cuts_its_link(rx):
    board = Board(rx.port, rx.state, "kitchen")
    board.sync()
    web = Http(rx.web_port)
    status, headers, _ = web.post("/boards/kitchen/unpair", {"csrf": web.csrf()})
    assert status == 303 and headers["Location"] == "/#pairing"
    assert "kitchen" not in rx.receiver.registry.devices()
    assert board.closed_by_server()
    page = web.get("/")[2].decode()
    assert 'data-board="kitchen"' not in page and 'data-board="hall"' in page
    assert "earshot pair NAME" in page  # pairing itself stays on the command line
    assert any(line.startswith("receiver web unpaired device=kitchen") for line in rx.log)


def test_an_open_page_hears_a_session_start_and_end_live(rx):
    web = Http(rx.web_port)
    web.get("/")
    updates = []
    stream = socket.create_connection(("127.0.0.1", rx.web_port), timeout=10)
    stream.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{rx.web_port}\r\n"
                   f"Cookie: {server.COOKIE}={web.cookies[server.COOKIE]}\r\n\r\n".encode())

    def read():
        buf = b""
        while chunk := _recv(stream):
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        updates.append(json.loads(line[6:]))

    threading.Thread(target=read, daemon=True).start()
    wait_for(lambda: updates, what="the first update")
    board = Board(rx.port, rx.state, "kitchen")
    board.start()
    board.sync()
    wait_for(lambda: 'data-state="streaming"' in updates[-1]["parts"]["boards"], what="streaming")
    assert 'class="bar open"' in updates[-1]["parts"]["today"]
    board.audio(np.zeros(3200, dtype="int16"))
    board.stop()
    wait_for(lambda: updates[-1]["parts"]["recordings"]["rows"], what="the stored session")
    [(stem, html)] = updates[-1]["parts"]["recordings"]["rows"]
    assert 'class="rec stored"' in html and stem == _stored(rx)[1]
    assert 'data-state="idle"' in updates[-1]["parts"]["boards"]
    board.session()  # a second one: the page gets its row, and only the id of the first
    wait_for(lambda: len(updates[-1]["parts"]["recordings"]["rows"]) == 2, what="the second session")
    [(_, new), (old, none)] = updates[-1]["parts"]["recordings"]["rows"]
    assert old == stem and none is None and 'class="rec stored"' in new
    stream.shutdown(socket.SHUT_RDWR)
    stream.close()
    board.close()


def _recv(sock):
    try:
        return sock.recv(65536)
    except OSError:  # closed by the test
        return b""


def test_the_ring_drawn_for_each_state_passes_the_auditors_camera_rules():
    # The page's ring uses the board's colours: an auditor's rules (host_tools/trace.py)
    # read the drawn ring as the board's.
    assert trace.is_listening(view.ring_colours("streaming"))
    assert trace.is_muted(view.ring_colours("muted")) and not trace.is_listening(view.ring_colours("muted"))
    assert trace.is_amber(view.ring_colours("offline")) and not trace.is_muted(view.ring_colours("offline"))
    idle = view.ring_colours("idle")
    assert not (trace.is_listening(idle) or trace.is_muted(idle) or trace.is_amber(idle))


# --- security -------------------------------------------------------------------------------------


def test_an_unauthenticated_request_gets_no_audio_byte_and_no_metadata(locked):
    meta, stem = _stored(locked)
    audio = (locked.recordings / meta["wav"]).read_bytes()[44:1044]
    web = Http(locked.web_port)
    secrets = [stem.encode(), b"kitchen", b"hall", audio[:64]]
    for path in ("/", f"/recordings/{stem}.wav", f"/recordings/{stem}/export", "/events", "/login",
                 "/recordings/nosuch-20260101-000000-1.wav"):
        status, headers, body = web.get(path)
        assert status in (303, 401, 200), path
        assert status != 200 or path == "/login"
        assert not any(s in body for s in secrets), path
    assert web.get("/")[1]["Location"] == "/login"
    assert web.get(f"/recordings/{stem}.wav", headers={"Range": "bytes=44-"})[0] == 401
    # ... nor with a made-up or stale session cookie
    web.cookies[server.COOKIE] = "x" * 43
    assert web.get(f"/recordings/{stem}.wav")[0] == 401


def test_without_a_password_a_request_not_from_the_page_gets_nothing(rx):
    # On loopback with no password, a browser gets its session by opening the page. A
    # request without that cookie (another site's <audio> or fetch: SameSite=Strict keeps
    # the cookie from it) gets no byte.
    Board(rx.port, rx.state, "kitchen").session()
    _, stem = _stored(rx)
    stranger = Http(rx.web_port)
    for path in (f"/recordings/{stem}.wav", f"/recordings/{stem}/export", "/events"):
        status, _, body = stranger.get(path)
        assert status == 401 and stem.encode() not in body


def test_the_session_cookie_is_httponly_and_samesite_strict(rx):
    _, headers, _ = Http(rx.web_port).get("/")
    [cookie] = headers.get_all("Set-Cookie")
    assert cookie.startswith(server.COOKIE + "=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags


def test_every_response_carries_the_content_security_policy(rx):
    web = Http(rx.web_port)
    for path in ("/", "/static/page.js", "/static/page.css", "/static/nosuch.js", "/nosuch", "/events"):
        # (/events with a session is a stream that never ends: asked for without one)
        headers = web.get(path)[1] if path != "/events" else Http(rx.web_port).get(path)[1]
        assert headers["Content-Security-Policy"] == server.CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    page = web.get("/")[2].decode()
    assert "<script>" not in page and "<script " not in page.replace('<script src="/static/page.js" defer>', "")
    assert " style=" not in page and "<style" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either


def test_a_forged_delete_fails(rx):
    board = Board(rx.port, rx.state, "kitchen")
    board.session()
    meta, stem = _stored(rx)
    victim, attacker = Http(rx.web_port), Http(rx.web_port)
    token = victim.csrf()
    attacker.csrf()
    path = f"/recordings/{stem}/delete"
    attempts = [
        (victim, {}, {}),  # no token
        (victim, {"csrf": "A" * 43}, {}),  # a wrong token
        (victim, {"csrf": attacker.csrf()}, {}),  # another session's token
        (victim, {"csrf": token}, {"Origin": "http://evil.example"}),  # another site posting
        (victim, {"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        (Http(rx.web_port), {"csrf": token}, {}),  # the token without the session
    ]
    for client, form, headers in attempts:
        status, _, _ = client.post(path, form, headers=headers)
        assert status == 403, (form, headers)
    assert victim.get(path)[0] == 405  # no change by GET
    assert (rx.recordings / meta["wav"]).exists()
    forged_unpair = victim.post("/boards/kitchen/unpair", {"csrf": "nope"})
    assert forged_unpair[0] == 403 and "kitchen" in rx.receiver.registry.devices()
    assert victim.post(path, {"csrf": token})[0] == 303  # the page's own form does work
    assert not (rx.recordings / meta["wav"]).exists()


@pytest.mark.parametrize("name", [
    "..%2Fsessions", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e", "kitchen", "kitchen-2026", "x" * 300,
    "kitchen-20260101-000000-1%00", "kitchen-20260101-000000-1%2F..%2F..%2Fstate%2Freceiver",
])
def test_session_names_that_are_not_a_stored_session_are_refused(rx, name):
    Board(rx.port, rx.state, "kitchen").session()
    web = Http(rx.web_port)
    csrf = web.csrf()
    for method, path in (("GET", f"/recordings/{name}.wav"), ("GET", f"/recordings/{name}/export"),
                         ("POST", f"/recordings/{name}/delete")):
        status, _, body = web.request(method, path, body={"csrf": csrf} if method == "POST" else None)
        assert status == 404, (method, path, status)
        assert b"RIFF" not in body and b"PRIVATE KEY" not in body
    assert len(recordings.sessions(rx.recordings)) == 1


def test_a_prefix_or_a_planted_metadata_file_reaches_nothing_outside(rx, tmp_path):
    # The CLI accepts a prefix of a name; the page only the exact name of a stored session.
    # A .json planted in the folder that points its "wav" outside is never followed.
    board = Board(rx.port, rx.state, "kitchen")
    board.number = 11  # session 12: its name's prefix ending in 1 is a well-formed name too
    board.session()
    _, stem = _stored(rx)
    (tmp_path / "secret.wav").write_bytes(b"RIFF secret")
    planted = "kitchen-20260101-000000-9"
    (rx.recordings / f"{planted}.json").write_text(json.dumps({"wav": "../secret.wav", "start": "x"}))
    web = Http(rx.web_port)
    web.get("/")
    assert stem.endswith("-12") and web.get(f"/recordings/{stem[:-1]}.wav")[0] == 404
    status, _, body = web.get(f"/recordings/{planted}.wav")
    assert status == 404 and b"secret" not in body


def test_the_page_answers_only_to_loopback_names_on_loopback(rx):
    # A site that rebinds its own name to 127.0.0.1 gets nothing: the Host header says it.
    for host in ("evil.example", f"evil.example:{rx.web_port}", f"192.168.1.5:{rx.web_port}"):
        status, headers, body = Http(rx.web_port, host=host).get("/")
        assert status == 421 and b"kitchen" not in body
    for host in (f"localhost:{rx.web_port}", f"127.0.0.1:{rx.web_port}"):
        assert Http(rx.web_port, host=host).get("/")[0] == 200


def test_a_non_loopback_address_without_a_password_is_refused_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "host_tools", "receive", "--listen", "127.0.0.1:0", "--web",
                           "0.0.0.0:0", "--state", str(tmp_path / "st"), "--recordings", str(tmp_path / "rec")],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    err = proc.stderr
    assert proc.returncode == 1 and err.count("\n") == 1 and proc.stdout == ""  # nothing listened
    assert "--web 0.0.0.0:0 is not loopback: set a password first with `earshot web-password`" in err
    with pytest.raises(CommandError):
        ReceiverThread(recordings=tmp_path / "rec", log=lambda line: None, state=tmp_path / "st",
                       web="[::]:0").start()


def test_the_login_wall_holds_on_a_non_loopback_address(tmp_path):
    set_password(tmp_path / "state")
    with receiver(tmp_path, web="0.0.0.0:0") as rx:
        Board(rx.port, rx.state, "kitchen").session()
        _, stem = _stored(rx)
        web = Http(rx.web_port)
        assert web.get("/")[:2][0] == 303
        assert web.get(f"/recordings/{stem}.wav")[0] == 401
        status, _, body = web.login("wrong password!")
        assert status == 401 and b"Wrong password." in body and server.COOKIE not in web.cookies
        status, headers, _ = web.login()
        assert status == 303 and headers["Location"] == "/" and server.COOKIE in web.cookies
        status, _, body = web.get("/")
        assert status == 200 and b'data-board="kitchen"' in body and b"log out" in body
        assert web.get(f"/recordings/{stem}.wav")[0] == 200
        # log out (a change: it needs the token too), and the cookie is worth nothing after
        old = dict(web.cookies)
        assert web.post("/logout", {"csrf": "nope"})[0] == 403
        assert web.post("/logout", {"csrf": web.csrf()})[0] == 303
        web.cookies = old
        assert web.get(f"/recordings/{stem}.wav")[0] == 401
        assert any(line.startswith("receiver web login peer=127.0.0.1") for line in rx.log)


def test_log_in_attempts_are_rate_limited(locked):
    web = Http(locked.web_port)
    for _ in range(server.LOGIN_FAILURES_PER_ADDRESS):
        assert web.login("not the password")[0] == 401
    status, headers, body = web.login()  # now even the right password waits
    assert status == 429 and int(headers["Retry-After"]) > 60 and b"Too many failed attempts" in body
    assert server.COOKIE not in web.cookies
    assert any("login_refused" in line and "too many failed attempts" in line for line in locked.log)


def test_log_in_attempts_in_all_are_rate_limited_too(locked, monkeypatch):
    # Guesses spread over many addresses still meet a limit in all.
    page = locked.receiver.web
    monkeypatch.setattr(server, "LOGIN_FAILURES_IN_ALL", 3)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        locked.call(page._failures.append, (time.monotonic(), address))
    assert Http(locked.web_port).login()[0] == 429


def test_a_log_in_from_another_site_is_refused(locked):
    web = Http(locked.web_port)
    status, _, _ = web.post("/login", {"password": PASSWORD}, headers={"Origin": "http://evil.example"})
    assert status == 403 and server.COOKIE not in web.cookies


# --- the password -----------------------------------------------------------------------------------


def test_web_password_stores_a_private_scrypt_hash_and_never_the_password(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(password.ENV, PASSWORD)
    assert main(["web-password", "--state", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "st" / password.FILE
    assert PASSWORD not in out and PASSWORD not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())
    assert record["kdf"] == "scrypt" and record["n"] == 2**15 and len(bytes.fromhex(record["salt"])) == 16
    assert password.verify(record, PASSWORD) and not password.verify(record, PASSWORD + "x")
    assert main(["web-password", "--state", str(tmp_path / "st")]) == 0
    assert json.loads(path.read_text())["salt"] != record["salt"]  # a fresh salt every time
    assert main(["web-password", "--state", str(tmp_path / "st"), "--clear"]) == 0
    assert not path.exists()


@pytest.mark.parametrize("given, message", [("short", "shorter than 10 characters")])
def test_web_password_mistakes_are_one_line(tmp_path, capsys, monkeypatch, given, message):
    monkeypatch.setenv(password.ENV, given)
    assert main(["web-password", "--state", str(tmp_path / "st")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert main(["web-password", "--state", str(tmp_path / "st"), "--clear"]) == 1
    assert "no web password is set" in capsys.readouterr().err


def test_a_damaged_password_file_is_one_line(tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / password.FILE).write_text('{"kdf": "scrypt", "n": 1099511627776, "r": 8, "p": 1}')
    proc = subprocess.run([sys.executable, "-m", "host_tools", "receive", "--listen", "127.0.0.1:0", "--web",
                           "127.0.0.1:0", "--state", str(tmp_path / "st"), "--recordings", str(tmp_path / "rec")],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "is damaged" in proc.stderr


def test_a_password_file_damaged_while_running_keeps_the_page_locked(locked):
    (locked.state / password.FILE).write_text("not json")
    web = Http(locked.web_port)
    assert web.get("/")[0] == 303
    assert web.login()[0] == 401 and server.COOKIE not in web.cookies
    assert any(line.startswith("receiver web password_unusable") for line in locked.log)


def test_a_taken_web_port_is_one_line_and_nothing_keeps_listening(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "host_tools", "receive", "--listen", "127.0.0.1:0", "--web",
                               f"127.0.0.1:{port}", "--state", str(tmp_path / "st"), "--recordings",
                               str(tmp_path / "rec")], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert f"--web 127.0.0.1:{port}: " in proc.stderr and "choose another port, or --no-web" in proc.stderr
