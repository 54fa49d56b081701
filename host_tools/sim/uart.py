# The virtual board's UART, as the host's tools reach it: a TCP port (pyserial's and
# esptool's socket://HOST:PORT) or a pseudo-terminal (a path like /dev/pts/5). What the
# board prints while no tool is attached is lost, as on a real UART.
import os
import socket
import tty

from host_tools.errors import CommandError


def open_uart(spec, on_lines):
    # "tcp:HOST:PORT" (PORT 0 picks a free one), "rfc2217:HOST:PORT" or "pty". on_lines(dtr,
    # rts) hears the modem lines, which only RFC 2217 carries.
    if spec == "pty":
        return PtyUart()
    kind, _, rest = spec.partition(":")
    host, _, port = rest.rpartition(":")
    if kind not in ("tcp", "rfc2217") or not host or not port.isdigit():
        raise CommandError(f"--serial wants tcp:HOST:PORT, rfc2217:HOST:PORT or pty, got {spec!r}")
    return TcpUart(host, int(port), on_lines if kind == "rfc2217" else None)


class TcpUart:
    """One tool at a time; a second one is turned away (a busy port). With on_lines, the
    port speaks RFC 2217 (rfc2217://), which carries DTR and RTS: esptool's and monitor's
    resets reach the board as on a USB cable (pyserial's RFC 2217 client is slow to change
    timeouts, so socket:// is the quicker port for esptool)."""

    def __init__(self, host, port, on_lines=None):
        try:
            self._server = socket.create_server((host, port))
        except OSError as e:
            raise CommandError(f"--serial tcp:{host}:{port}: cannot listen there ({e.strerror})")
        self._server.setblocking(False)
        self._client = None
        self._on_lines = on_lines
        self._telnet = None  # RFC 2217's PortManager, for the attached tool
        scheme = "rfc2217" if on_lines else "socket"
        self.url = "%s://%s:%d" % (scheme, *self._server.getsockname()[:2])

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
        if self._on_lines:
            from serial.rfc2217 import PortManager

            self._telnet = PortManager(_ModemLines(self._on_lines), _Sender(conn))
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
                self._client = self._telnet = None
                return data, True
            data += b"".join(self._telnet.filter(chunk)) if self._telnet else chunk

    def write(self, data):
        if self._client is not None and data:
            try:
                self._client.sendall(b"".join(self._telnet.escape(data)) if self._telnet else data)
            except OSError:
                pass  # the tool went away; read() will say so

    def pending(self):
        return False  # sendall: the kernel holds what the tool has not read yet

    def flush(self):
        pass

    def close(self):
        for s in self.fds():
            s.close()


class _Sender:
    def __init__(self, conn):
        self._conn = conn

    def write(self, data):
        try:
            self._conn.sendall(data)
        except OSError:
            pass


class _ModemLines:
    # The serial port as RFC 2217's PortManager sees it: settings it may change (kept; the
    # virtual UART has no baud rate) and DTR/RTS, which go to the board.
    def __init__(self, on_lines):
        self._on_lines = on_lines
        self.baudrate, self.bytesize, self.parity, self.stopbits = 115200, 8, "N", 1
        self.xonxoff = self.rtscts = self.break_condition = False
        self.cts, self.dsr, self.ri, self.cd = True, True, False, False
        self._dtr = self._rts = False

    @property
    def dtr(self):
        return self._dtr

    @dtr.setter
    def dtr(self, on):
        self._dtr = bool(on)
        self._on_lines(self._dtr, self._rts)

    @property
    def rts(self):
        return self._rts

    @rts.setter
    def rts(self, on):
        self._rts = bool(on)
        self._on_lines(self._dtr, self._rts)

    def reset_input_buffer(self):
        pass

    def reset_output_buffer(self):
        pass


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
