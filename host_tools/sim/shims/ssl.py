# ssl on the virtual board: the interpreter's own TLS (mbedTLS, as on the ESP32), with each
# TLS socket in a thin wrapper that reads every decrypted byte as soon as it can. Then the
# socket's file descriptor tells the truth about readiness (nothing hides inside mbedTLS),
# so select.poll stays a plain fd poll: the interpreter's poll of an ssl object sleeps 1 ms
# per call, which made the simulator 40x slower. The wrapper also sees the plaintext, so it
# knows when the board sent a ping, and when the handshake waits for the receiver: for both
# the audio clock waits for the receiver's answer (see _sim.await_reply), so a link comes up
# at the same audio time on every run, however busy the host is.
import io

import _sim
from _builtin import builtin

_ssl = builtin("ssl")
for _name in dir(_ssl):
    if not _name.startswith("__") and _name != "SSLContext":
        globals()[_name] = getattr(_ssl, _name)

_PING = b'"type": "ping"'
_WAKE_START = b'"trigger": "wake"'  # an audio-start the receiver answers with a wake verdict
# answers the board reads -> what they answer
_ANSWERS = ((b'"pong"', "pong"), (b'"wake-verdict"', "verdict"))


class SSLContext:
    def __init__(self, protocol):
        self._ctx = _ssl.SSLContext(protocol)

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def __setattr__(self, name, value):
        if name == "_ctx":
            object.__setattr__(self, name, value)
        else:
            setattr(self._ctx, name, value)

    def wrap_socket(self, sock, **kw):
        return _TlsStream(self._ctx.wrap_socket(sock, **kw), sock)


_EAGER = 512


class _TlsStream(io.IOBase):
    def __init__(self, tls, raw):
        self._tls = tls
        self._raw = raw  # the socket shim underneath: its fd is what select polls
        self._chunk = bytearray(512)
        self._buf = b""
        self._eof = False
        self._handshaking = True
        self._flight = 0  # bytes the raw socket had sent when the clock last waited for an answer

    @property
    def buffered(self):
        # Readable without touching the socket (select's shim asks).
        try:
            self._fill()
        except OSError:
            return True  # the reader's read() meets the error, where it can handle it
        return bool(self._buf) or self._eof

    def _fill(self):
        # What TLS has decrypted, but at most _EAGER bytes ahead of the reader: a board's
        # socket holds no more in the heap (a peer's long line must not cost the firmware's).
        while not self._eof and len(self._buf) < _EAGER:
            n = self._tls.readinto(self._chunk)
            if n is None:
                return
            if n == 0:
                self._eof = True
            else:
                self._buf += bytes(self._chunk[:n])

    def _take(self, n):
        out, self._buf = self._buf[:n], self._buf[n:]
        for marker, kind in _ANSWERS:
            if marker in out:
                _sim.reply_read(kind)
        return out

    def readline(self):
        self._fill()
        if not self._buf:
            return b"" if self._eof else None
        i = self._buf.find(b"\n")
        return self._take(len(self._buf) if i < 0 else i + 1)

    def read(self, n=-1):
        self._fill()
        if not self._buf:
            return b"" if self._eof else None
        return self._take(len(self._buf) if n < 0 else n)

    def readinto(self, buf, n=-1):
        data = self.read(len(buf) if n < 0 else n)
        if data is None:
            return None
        buf[:len(data)] = data
        return len(data)

    def write(self, buf):
        n = self._tls.write(buf)
        if n is None and self._handshaking:
            if self._raw.sent != self._flight:  # once per flight: a mute peer still times out
                self._flight = self._raw.sent
                _sim.await_reply("handshake", self._raw.real)  # it needs the receiver's next flight
        elif n is not None:
            self._handshaking = False
            if n <= 256:  # requests are small; audio chunks are not
                head = bytes(buf[:n])
                if _PING in head:
                    _sim.await_reply("pong", self._raw.real)
                elif _WAKE_START in head:
                    _sim.await_reply("verdict", self._raw.real, _sim.config["verdict_after_ms"])
        return n

    def setblocking(self, flag):
        self._tls.setblocking(flag)

    def ioctl(self, req, arg):
        return self._raw.ioctl(req, arg)

    def close(self):
        self._tls.close()
