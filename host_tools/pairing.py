# `earshot pair` / `earshot unpair`: who may talk to this receiver (DESIGN.md P5).
#
# The receiver has one EC P-256 key and a self-signed certificate for the name
# "earshot-receiver". Each board it pairs with gets its own key and a certificate for its
# device name, signed by the receiver's key. On the wire (mutual TLS):
#   - the board pins the receiver's certificate: any other receiver fails the handshake
#     before the board sends a byte of audio;
#   - the receiver accepts only certificates it signed AND that the registry lists as
#     paired; `unpair` removes the device and remembers its certificate as revoked.
# TLS itself makes a recorded handshake useless to replay (fresh randoms, ephemeral ECDH).
#
# The state folder (mode 0700) holds receiver.key, receiver.crt, devices.json, and per
# device pairings/<name>/{receiver.crt, device.crt, device.key}: what gets installed on
# that board (`earshot sim --pairing`, later deploy). Keys never reach a log line.
import datetime
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.private import make_private_dir, write_private

RECEIVER_NAME = "earshot-receiver"  # the name the board checks in the receiver's certificate
DEVICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # becomes part of file names
BOARD_FILES = ("receiver.crt", "device.crt", "device.key")  # DER, as the board's ssl loads them
VALID_DAYS = 3650  # the board has no trustworthy clock: validity is not what protects it


def default_state():
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "earshot" / "receiver"


def add_state_argument(parser):
    parser.add_argument("--state", default=None, metavar="DIR",
                        help="the receiver's keys and paired devices (default "
                             "$XDG_CONFIG_HOME/earshot/receiver, i.e. ~/.config/earshot/receiver)")


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


class Registry:
    """The receiver's identity and its paired devices, in one state folder."""

    def __init__(self, state):
        self.state = Path(state if state is not None else default_state())
        self._path = self.state / "devices.json"
        self._stamp = None
        self._devices, self._revoked = {}, set()

    # --- who is paired (re-read when the file changes: unpair works on a running receiver)

    def _load(self):
        try:
            stamp = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            self._devices, self._revoked, self._stamp = {}, set(), None
            return
        if stamp == self._stamp:
            return
        try:
            raw = json.loads(self._path.read_text())
            devices, revoked = dict(raw["devices"]), set(raw["revoked"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CommandError(f"{self._path} is damaged ({e}); it lists the paired boards: "
                               "restore it from a backup, or delete it and pair every board again")
        self._devices, self._revoked, self._stamp = devices, revoked, stamp

    def _save(self):
        write_private(self._path, json.dumps({"devices": self._devices, "revoked": sorted(self._revoked)},
                                             indent=1).encode() + b"\n")
        self._stamp = None

    def devices(self):
        self._load()
        return dict(self._devices)

    def device_for(self, cert_der):
        """The paired device name for this certificate, or None (unknown or revoked)."""
        self._load()
        fp = fingerprint(cert_der)
        if fp in self._revoked:
            return None
        return next((name for name, d in self._devices.items() if d["fingerprint"] == fp), None)

    # --- the receiver's own key

    def has_identity(self):
        return (self.state / "receiver.key").exists() and (self.state / "receiver.crt").exists()

    def _identity(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        if not self.has_identity():
            make_private_dir(self.state, "--state")
            key = _new_key()
            cert = _certificate(RECEIVER_NAME, key.public_key(), key, None, ca=True)
            write_private(self.state / "receiver.key", _key_der(key))
            write_private(self.state / "receiver.crt", _cert_der(cert))
        key = serialization.load_der_private_key((self.state / "receiver.key").read_bytes(), None)
        cert = x509.load_der_x509_certificate((self.state / "receiver.crt").read_bytes())
        return key, cert

    def server_context(self, on_refused=None):
        """The receiver's TLS context: its certificate (made on first use), and client
        certificates required. on_refused(reason) hears of every failed handshake (asyncio
        itself logs them only in debug mode)."""
        import ssl

        key, cert = self._identity()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=_cert_der(cert))
        _load_chain(ctx, _cert_der(cert), _key_der(key))
        if on_refused is not None:
            class Reporting(ssl.SSLObject):
                def do_handshake(self):
                    try:
                        return super().do_handshake()
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        raise
                    except ssl.SSLError as e:
                        on_refused(e.reason or e.__class__.__name__)
                        raise

            ctx.sslobject_class = Reporting
        return ctx

    # --- pairing

    def pair(self, name):
        """Issues credentials for a new device; returns the folder holding BOARD_FILES."""
        if not DEVICE_NAME.fullmatch(name or ""):
            raise CommandError(f"bad device name {name!r}: use 1-32 of A-Z a-z 0-9 _ - "
                               "(the board's `device` setting)")
        ca_key, ca_cert = self._identity()
        if name in self.devices():
            raise CommandError(f"{name} is already paired; `earshot unpair {name}` first to give it new keys")
        key = _new_key()
        cert = _certificate(name, key.public_key(), ca_key, ca_cert, ca=False)
        folder = self.bundle(name)
        make_private_dir(folder.parent, "--state")
        make_private_dir(folder, "--state")
        write_private(folder / "receiver.crt", _cert_der(ca_cert))
        write_private(folder / "device.crt", _cert_der(cert))
        write_private(folder / "device.key", _key_der(key))
        self._devices[name] = {"fingerprint": fingerprint(_cert_der(cert)), "paired": _now()}
        self._save()
        return folder

    def unpair(self, name):
        devices = self.devices()
        if name not in devices:
            known = ", ".join(sorted(devices)) or "none"
            raise CommandError(f"{name!r} is not paired with this receiver (paired: {known})")
        self._revoked.add(devices[name]["fingerprint"])
        del self._devices[name]
        self._save()
        shutil.rmtree(self.bundle(name), ignore_errors=True)

    def bundle(self, name):
        return self.state / "pairings" / name


def load_bundle(folder):
    """{file name: bytes} of a pairing folder, or CommandError saying what is missing."""
    folder = Path(folder)
    out = {}
    for name in BOARD_FILES:
        try:
            out[name] = (folder / name).read_bytes()
        except OSError as e:
            raise CommandError(f"{folder / name}: {e.strerror}; make the credentials with `earshot pair NAME` "
                               "and give its folder (…/pairings/NAME)")
    return out


def client_context(bundle):
    """A Python TLS client context that acts as the board of this pairing bundle (tests,
    benches): it pins the receiver's certificate and presents the device's."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=bundle["receiver.crt"])
    _load_chain(ctx, bundle["device.crt"], bundle["device.key"])
    return ctx


def _load_chain(ctx, cert_der, key_der):
    # ssl reads keys only from PEM files: a private temporary folder, gone at once.
    import ssl
    import tempfile

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_der_private_key(key_der, None)
    with tempfile.TemporaryDirectory(prefix="earshot-tls-") as tmp:  # mode 0700
        write_private(Path(tmp) / "cert.pem", ssl.DER_cert_to_PEM_cert(cert_der).encode())
        write_private(Path(tmp) / "key.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        ctx.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _certificate(cn, public_key, signing_key, issuer, ca):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _cert_der(cert):
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.DER)


def _key_der(key):
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- command line: `earshot pair` and `earshot unpair` ---------------------------------------


def add_pair_arguments(parser):
    parser.add_argument("device", nargs="?", help="the board's device name (its `device` setting)")
    parser.add_argument("--list", action="store_true", help="list the paired devices instead")
    add_state_argument(parser)


def run_pair(args):
    registry = Registry(args.state)
    if args.list:
        devices = registry.devices()
        for name, d in sorted(devices.items()):
            print(f"{name}  paired {d['paired']}  certificate sha256 {d['fingerprint'][:16]}…")
        if not devices:
            print(f"no paired devices in {registry.state}")
        return 0
    if not args.device:
        raise CommandError("give the device name to pair (e.g. `earshot pair kitchen`), or --list")
    folder = registry.pair(args.device)
    print(f"paired {args.device}: its credentials are in {folder} (private to you)")
    print(f"  try it: earshot sim --set device={args.device} --pairing {folder} --receiver HOST:PORT")
    return 0


def add_unpair_arguments(parser):
    parser.add_argument("device", help="the device name to revoke")
    add_state_argument(parser)


def run_unpair(args):
    Registry(args.state).unpair(args.device)
    print(f"unpaired {args.device}: the receiver refuses its certificate from now on")
    return 0
