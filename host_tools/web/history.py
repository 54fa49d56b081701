# What the web page reads from the recordings folder: the session log (sessions.jsonl,
# one line per session saved, passed through, rejected, discarded or deleted) and the
# stored sessions. The log only grows (between purges of the folder by hand), so it is
# read once and then from where it was left.
import datetime
import json
import os
from pathlib import Path

from host_tools import recordings

LEFT = ("saved", "passed_through", "rejected", "discarded")  # audio left a board in each


class SessionLog:
    def __init__(self, folder):
        self.path = Path(folder) / recordings.SESSION_LOG
        self._entries = []
        self._offset = 0
        self._inode = None

    def stamp(self):
        """Changes whenever the log does (polled by the page)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def entries(self):
        """Every line of the log as a dict (lines that are not JSON objects are skipped)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self._offset:  # replaced or cut: from the top
                    self._entries, self._offset, self._inode = [], 0, st.st_ino
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            self._entries, self._offset, self._inode = [], 0, None
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self._entries.append(entry)
        self._offset += end
        return self._entries


def started(entry):
    """The entry's start as an aware datetime, or None."""
    try:
        t = datetime.datetime.fromisoformat(entry["start"])
    except (KeyError, TypeError, ValueError):
        return None
    return t if t.tzinfo is not None else None


def key(entry):
    # One session of one board: the log names it by device, number and start.
    return entry.get("device"), entry.get("session"), entry.get("start")


def sessions_that_left(entries):
    """Entries for every session whose audio left a board, each with "deleted": True once
    its recording was deleted, oldest first."""
    deleted = {key(e) for e in entries if e.get("event") == "deleted"}
    out = []
    for e in entries:
        if e.get("event") in LEFT and started(e) is not None:
            out.append({**e, "deleted": e.get("event") == "saved" and key(e) in deleted})
    return sorted(out, key=lambda e: started(e))
