# The board's serial port, the same for every command that talks to a board (flash,
# deploy, monitor): the one ESP32 on USB, whether the port can reset the board (an RTS
# line), and one line saying why a port would not open.
import os
import re

from host_tools.errors import CommandError

# USB-serial bridges found on ESP32 dev boards: CP210x, CH340, CH9102, FTDI, Espressif's own
ESP_USB_IDS = {(0x10C4, 0xEA60), (0x1A86, 0x7523), (0x1A86, 0x55D4), (0x0403, 0x6001), (0x303A, 0x1001)}
OPEN_HINTS = [  # (pattern in pyserial's or the OS's error, what to tell the user)
    (r"Errno 13\b|Permission denied", "cannot open {port}: permission denied: add your user to the dialout group, "
                                      "then log in again"),
    (r"Errno 111\b|Connection refused", "nothing listens on {port}: is the board (or `earshot sim --serial`) running?"),
    (r"exclusively lock|Errno 16\b|Errno 11\b|[Rr]esource busy",
     "{port} is busy: another program has the port open: close earshot monitor / screen"),
    (r"Errno 2\b|No such file", "no such port {port}: check the name, or leave out --port to find the board on USB"),
    (r"protocol .* not known|invalid URL", "{port} is neither a serial port nor a URL pyserial knows "
                                            "(socket://HOST:PORT, rfc2217://HOST:PORT)"),
]


def find_port():
    from serial.tools import list_ports

    ports = list(list_ports.comports())
    boards = [p for p in ports if (p.vid, p.pid) in ESP_USB_IDS]
    if len(boards) == 1:
        return boards[0].device
    if not boards:
        seen = ", ".join(p.device for p in ports) or "none"
        raise CommandError(f"no ESP32 board found on USB (serial ports: {seen}); plug it in, or give --port")
    raise CommandError("several boards found (" + ", ".join(p.device for p in boards) + "); choose one with --port")


def is_pty(port):
    return os.path.realpath(port).startswith("/dev/pts/")


def has_rts(port):
    # USB serial ports carry RTS (the dev boards' EN), and so does rfc2217://; socket:// and
    # a pty (the virtual board) do not.
    if "://" in port:
        return port.startswith("rfc2217://")
    return not is_pty(port)


def explain(error, port):
    # A one-line hint for an error opening or using the port, or None if none fits.
    for pattern, hint in OPEN_HINTS:
        if re.search(pattern, str(error)):
            return hint.format(port=port)
    return None


def why_not_open(port):
    # Why a tool could not open the port: open it with pyserial and say what went wrong.
    import serial

    try:
        serial.serial_for_url(port).close()
    except (serial.SerialException, OSError, ValueError) as e:
        return explain(e, port) or f"cannot open {port}: {e}"
    return f"cannot open {port}: is another program using it (earshot monitor, screen)?"
