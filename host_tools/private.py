# Files only their owner may read: recordings, keys, the paired-device registry.
import os
from pathlib import Path

from host_tools.errors import CommandError


def make_private_dir(directory, option):
    """Creates `directory` (mode 0700, exactly) if needed; `option` names the command-line
    option a user would change when it cannot be used."""
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)  # exact, whatever the umask
    except FileExistsError:
        if not directory.is_dir():
            raise CommandError(f"{directory} exists and is not a directory; choose another {option}") from None
    except OSError as e:
        raise CommandError(f"cannot create {directory}: {e.strerror}; choose another {option}") from None


def open_private(path, exclusive, append=False):
    """A file of mode 0600 (exactly) for writing bytes: new (exclusive), emptied, or appended to."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # exact, whatever the umask
    return open(fd, "wb")


def write_private(path, data):
    """Replaces `path` with `data` atomically (a crash leaves the old or the new file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, exclusive=False) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
