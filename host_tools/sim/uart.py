# The virtual board's UART, as the host's tools reach it: a TCP port (pyserial's and
# esptool's socket://HOST:PORT) or a pseudo-terminal (a path like /dev/pts/5). What the
# board prints while no tool is attached is lost, as on a real UART.
import os
import socket
import tty

from host_tools.errors import CommandError


def open_uart(spec):
    # "tcp:HOST:PORT" (PORT 0 picks a free one) or "pty".
    if spec == "pty":
        return PtyUart()
    kind, _, rest = spec.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp" or not host or not port.isdigit():
        raise CommandError(f"--serial wants tcp:HOST:PORT or pty, got {spec!r}")
    return TcpUart(host, int(port))


class TcpUart:
    """One tool at a time; a second one is turned away (a busy port)."""

    def __init__(self, host, port):
        try:
            self._server = socket.create_server((host, port))
        except OSError as e:
            raise CommandError(f"--serial tcp:{host}:{port}: cannot listen there ({e.strerror})")
        self._server.setblocking(False)
        self._client = None
        self.url = "socket://%s:%d" % self._server.getsockname()[:2]

    def fds(self):
        return [self._server] + ([self._client] if self._client else [])

    def read(self, fd):
        # -> (bytes from the tool, whether the tool went away)
        if fd is not self._server:
            return self._drain()
        conn, _ = self._server.accept()
        data, left = self._drain() if self._client else (b"", False)
        if self._client is not None:  # still attached: the port is busy
            conn.close()
            return data, left
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = conn
        return data, left

    def _drain(self):
        # Everything the tool sent so far; a tool that closed may have sent its goodbye
        # (e.g. mpremote's Ctrl-B) just before, and a new tool may be knocking already.
        data = b""
        while True:
            try:
                chunk = self._client.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return data, False
            except OSError:
                chunk = b""
            if not chunk:
                self._client.close()
                self._client = None
                return data, True
            data += chunk

    def write(self, data):
        if self._client is not None and data:
            try:
                self._client.sendall(data)
            except OSError:
                pass  # the tool went away; read() will say so

    def pending(self):
        return False  # sendall: the kernel holds what the tool has not read yet

    def flush(self):
        pass

    def close(self):
        for s in self.fds():
            s.close()


class PtyUart:
    """The slave end stays open here, so a tool may close and reopen the path. Output waits
    here while the tool is slow to read (a real UART never drops what the host reads);
    only past MAX_PENDING, with nobody reading, is the oldest lost."""

    MAX_PENDING = 1 << 20

    def __init__(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.url = os.ttyname(self._slave)
        self._out = bytearray()

    def fds(self):
        return [self._master]

    def read(self, fd):
        try:
            return os.read(self._master, 65536), False
        except BlockingIOError:
            return b"", False

    def write(self, data):
        self._out += data
        del self._out[:max(0, len(self._out) - self.MAX_PENDING)]
        self.flush()

    def pending(self):
        return bool(self._out)

    def flush(self):
        while self._out:
            try:
                n = os.write(self._master, self._out)
            except BlockingIOError:
                return
            del self._out[:n]

    def close(self):
        os.close(self._master)
        os.close(self._slave)
