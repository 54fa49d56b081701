# Helpers for the web page's tests: a receiver with its page on loopback, a board that
# speaks the link protocol from this process, and a plain HTTP client that keeps cookies.
import http.client
import json
import re
import socket
import time
from contextlib import contextmanager

import numpy as np

from host_tools import pairing
from host_tools.receiver import PONG, ReceiverThread
from host_tools.web import password

FORMAT = {"rate": 16000, "width": 2, "channels": 1}
PASSWORD = "correct horse battery"


def event(kind, data=None, payload=b""):
    head = {"type": kind}
    if data is not None:
        head["data"] = data
    if payload:
        head["payload_length"] = len(payload)
    return json.dumps(head).encode() + b"\n" + payload


class Board:
    """A paired board as the receiver sees one: hello, state, sessions of PCM."""

    def __init__(self, port, state, device, reported="idle"):
        ctx = pairing.client_context(pairing.load_bundle(pairing.Registry(state).bundle(device)))
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each event leaves at once, as timed
        self.sock = ctx.wrap_socket(raw, server_hostname=pairing.RECEIVER_NAME)
        self.number = 0
        self.send(event("hello", {"device": device, "firmware": "test", "state": reported}))

    def send(self, *frames):
        self.sock.sendall(b"".join(frames))

    def sync(self):
        # The receiver has handled everything sent before its pong.
        self.send(event("ping"))
        got = b""
        while not got.endswith(PONG):
            data = self.sock.recv(4096)
            assert data, "closed by the receiver"
            got += data

    def start(self, trigger="button"):
        self.number += 1
        self.send(event("audio-start", {**FORMAT, "timestamp": 0, "session": self.number, "trigger": trigger}))

    def audio(self, pcm):
        for i in range(0, len(pcm), 320):
            self.send(event("audio-chunk", {**FORMAT, "timestamp": i // 16}, pcm[i:i + 320].astype("<i2").tobytes()))

    def stop(self):
        self.send(event("audio-stop", {"timestamp": 0, "dropped": 0}))
        self.sync()

    def session(self, seconds=1.0, seed=0, trigger="button"):
        pcm = np.random.default_rng(seed).integers(-3000, 3000, int(seconds * 16000)).astype(np.int16)
        self.start(trigger)
        self.audio(pcm)
        self.stop()
        return pcm

    def closed_by_server(self, timeout=3.0):
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(4096):
                pass
        except (OSError, TimeoutError):
            pass
        return True

    def close(self):
        self.sock.close()


class Http:
    """One browser's worth of HTTP: keeps the session cookie, never follows redirects."""

    def __init__(self, port, host=None):
        self.port = port
        self.host = host or f"127.0.0.1:{port}"
        self.cookies = {}

    def request(self, method, path, body=None, headers=None, origin=True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Host": self.host, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "POST" and origin:
            sent.setdefault("Origin", f"http://{self.host}")
        if isinstance(body, dict):
            body = "&".join(f"{k}={_quote(v)}" for k, v in body.items())
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if value in ("", '""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        conn.close()
        return response.status, response.headers, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body or {}, **kw)

    def csrf(self):
        status, _, body = self.get("/")
        assert status == 200, status
        return re.search(rb'<meta name="csrf" content="([^"]+)"', body)[1].decode()

    def login(self, given=PASSWORD):
        return self.post("/login", {"password": given})


def _quote(value):
    from urllib.parse import quote

    return quote(str(value), safe="")


def set_password(state, given=PASSWORD):
    # A cheap scrypt for tests (the command's default costs ~65 ms a guess, by design).
    from host_tools.private import make_private_dir, write_private

    make_private_dir(state, "--state")
    write_private(state / password.FILE, json.dumps(password.hash_password(given, n=2**10)).encode())


@contextmanager
def receiver(tmp_path, boards=("kitchen", "hall"), web="127.0.0.1:0", **options):
    """A ReceiverThread with its page; .log holds its log lines, .state its state folder."""
    state = tmp_path / "state"
    registry = pairing.Registry(state)
    for name in boards:
        if name not in registry.devices():
            registry.pair(name)
    log = []
    options.setdefault("verify", False)
    with ReceiverThread(recordings=tmp_path / "rec", log=log.append, state=state, web=web, **options) as r:
        r.log, r.state, r.recordings = log, state, tmp_path / "rec"
        yield r


def wait_for(predicate, timeout=5.0, what="condition"):
    end = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value
