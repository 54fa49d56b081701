# The credentials `earshot pair` made for this board (DESIGN.md P5): the receiver's
# certificate, pinned, and this device's own certificate and key, in /pair as DER.
# tls_context() turns them into the one TLS context every connection uses; without
# them the board never connects, so no audio can go anywhere.
import ssl

DIR = "pair"
RECEIVER_NAME = "earshot-receiver"  # the name in the receiver's certificate


class PairingError(Exception):
    pass


def _read(name):
    try:
        with open(DIR + "/" + name, "rb") as f:
            return f.read()
    except OSError:
        raise PairingError("missing " + DIR + "/" + name)


def tls_context():
    # Raises PairingError; the message names a file, never its contents.
    receiver, cert, key = _read("receiver.crt"), _read("device.crt"), _read("device.key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cadata=receiver)
        ctx.load_cert_chain(cert, key)
    except (ValueError, OSError) as e:
        raise PairingError("unusable credentials in " + DIR + " (" + e.__class__.__name__ + ")")
    return ctx
