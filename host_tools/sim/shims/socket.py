# socket on the virtual board: real sockets (loopback), each send and receive a trace
# event with its byte count, as a sniffer on the board's link would see it.
import io

import _sim
from _builtin import builtin

_socket = builtin("socket")
for _name in dir(_socket):
    if not _name.startswith("__") and _name != "socket":
        globals()[_name] = getattr(_socket, _name)

_GET_FILENO = 10  # MP_STREAM_GET_FILENO
_SETUP = (20, 21, 22)
_EHOSTUNREACH = 113  # TLS change_cipher_spec, alert, handshake


class socket(io.IOBase):
    def __init__(self, af=_socket.AF_INET, kind=_socket.SOCK_STREAM, proto=0):
        self._s = _socket.socket(af, kind, proto)
        self._lost = False
        _sim.sockets.add(self)
        self.sent = 0  # bytes sent so far
        self._record_left = 0  # bytes of the last TLS record still to come in later writes
        self._record_type = 22

    def ioctl(self, req, arg):
        # asyncio's poller asks for the file descriptor and polls the real socket.
        if req == _GET_FILENO:
            return self._s.fileno()
        return -1

    def _out(self, buf, n):
        # A sniffer also reads the TLS record headers (they travel in clear): writes made
        # only of handshake records (set-up, not audio) are marked so.
        if n:
            self.sent += n
            _sim.emit("net", '"dir": "out", "bytes": %d%s' % (n, ', "tls": "handshake"' if self._handshake(buf, n) else ""))
        return n

    def _handshake(self, buf, n):
        # Walks the records in buf[:n] (a record may go on in the next write); True if none
        # is application data (content type 23) and the write does not continue one.
        i, only_handshake = self._record_left, self._record_type in _SETUP
        while i + 5 <= n:
            self._record_type = buf[i]
            only_handshake = only_handshake and buf[i] in _SETUP
            i += 5 + (buf[i + 3] << 8 | buf[i + 4])
        if i < n:  # a header split across writes: not worth tracking, call it data
            i, self._record_type, only_handshake = n, 23, False
        self._record_left = i - n
        return only_handshake

    def _in(self, data):
        if data:
            _sim.emit("net", '"dir": "in", "bytes": %d' % len(data))
        return data

    @property
    def real(self):
        return self._s

    def lose(self):
        # The Wi-Fi went: nothing more goes through this connection. The board finds out
        # when it next sends, or when a pong does not come.
        self._lost = True

    def _check(self):
        if self._lost or not _sim.wifi_up:
            raise OSError(_EHOSTUNREACH)

    def connect(self, addr):
        self._check()
        self._s.connect(addr)

    def setblocking(self, flag):
        self._s.setblocking(flag)

    def settimeout(self, value):
        self._s.settimeout(value)

    def setsockopt(self, *args):
        self._s.setsockopt(*args)

    def write(self, buf):
        self._check()
        return self._out(buf, self._s.write(buf))

    def send(self, buf):
        self._check()
        return self._out(buf, self._s.send(buf))

    def sendall(self, buf):
        self._check()
        self._s.sendall(buf)
        self._out(buf, len(buf))

    def read(self, n=-1):
        self._check()
        return self._in(self._s.read(n) if n >= 0 else self._s.read())

    def recv(self, n):
        self._check()
        return self._in(self._s.recv(n))

    def readinto(self, buf, n=-1):
        self._check()
        got = self._s.readinto(buf) if n < 0 else self._s.readinto(buf, n)
        if got:
            _sim.emit("net", '"dir": "in", "bytes": %d' % got)
        return got

    def readline(self):
        self._check()
        return self._in(self._s.readline())

    def close(self):
        _sim.sockets.discard(self)
        if self._s is not None:
            self._s.close()
        self._s = None

    def fileno(self):
        return self._s.fileno()
