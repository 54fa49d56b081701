# Files the tools write for the user (reports, plots, converted models, caches): whole or
# not at all. Private files (recordings, keys) go through host_tools.private instead.
import os
import tempfile
from pathlib import Path


def write_atomically(path, write):
    """Calls write(tmp) on a temporary file beside `path`, then renames it over `path`: a
    failure leaves the old file (or none), never half a new one. The file is readable like
    any the user writes (0644). Raises OSError."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
