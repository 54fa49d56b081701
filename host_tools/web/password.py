# `earshot web-password`: the password of the receiver's web page. Stored as a scrypt
# hash (a per-password random salt, the parameters beside it) in the receiver's state
# folder, private to the user; the password itself is never written or printed.
import getpass
import hashlib
import hmac
import json
import os
import secrets

from host_tools.errors import CommandError
from host_tools.pairing import Registry, add_state_argument
from host_tools.private import make_private_dir, write_private

FILE = "web-password.json"
ENV = "EARSHOT_WEB_PASSWORD"
MIN_LENGTH = 10
# scrypt: 32 MiB and about 65 ms per guess on one of this machine's cores (N = 2**15, r = 8, p = 1)
N, R, P, DKLEN = 2**15, 8, 1, 32
_MAX_N, _MAX_R, _MAX_P = 2**17, 8, 2  # bounds on what a file may ask for (at most 256 MiB)


def add_arguments(parser):
    add_state_argument(parser)
    parser.add_argument("--clear", action="store_true",
                        help="remove the password (the page may then only listen on loopback)")


def run(args):
    path = Registry(args.state).state / FILE
    if args.clear:
        try:
            path.unlink()
        except FileNotFoundError:
            raise CommandError(f"no web password is set in {path.parent}") from None
        print(f"web password removed from {path.parent}; the page now only listens on loopback")
        return 0
    password = _ask()
    make_private_dir(path.parent, "--state")
    write_private(path, json.dumps(hash_password(password)).encode() + b"\n")
    print(f"web password set (scrypt hash in {path}); a running receiver uses it from its next log-in")
    return 0


def _ask():
    # From $EARSHOT_WEB_PASSWORD (scripts, tests) or typed twice, never from the command line.
    password = os.environ.get(ENV)
    if password is None:
        try:
            password = getpass.getpass("web password: ")
            if getpass.getpass("again: ") != password:
                raise CommandError("the two passwords differ; nothing was changed")
        except EOFError:
            raise CommandError(f"no password given: type it at the prompt or set ${ENV}") from None
    if len(password) < MIN_LENGTH:
        raise CommandError(f"the password is shorter than {MIN_LENGTH} characters; choose a longer one")
    return password


def hash_password(password, n=N):
    salt = secrets.token_bytes(16)
    return {"kdf": "scrypt", "n": n, "r": R, "p": P, "salt": salt.hex(),
            "hash": _scrypt(password, salt, n, R, P, DKLEN).hex()}


def verify(record, password):
    """True if password matches the stored record (constant time in the comparison)."""
    digest = bytes.fromhex(record["hash"])
    got = _scrypt(password, bytes.fromhex(record["salt"]), record["n"], record["r"], record["p"], len(digest))
    return hmac.compare_digest(got, digest)


def load(state):
    """The stored record, or None if no password is set; CommandError if the file is damaged."""
    path = state / FILE
    try:
        record = json.loads(path.read_text())
        n, r, p = record["n"], record["r"], record["p"]
        bytes.fromhex(record["salt"]), bytes.fromhex(record["hash"])
        if record["kdf"] != "scrypt" or not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R
                                              and 1 <= p <= _MAX_P):
            raise ValueError("unsupported parameters")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CommandError(f"{path} is damaged ({e}); set the password again with `earshot web-password`") from None
    return record


def _scrypt(password, salt, n, r, p, dklen):
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * r * n * p)
