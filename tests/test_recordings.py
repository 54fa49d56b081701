# `earshot recordings` and retention: the user lists, plays, exports and deletes what the
# receiver kept, and old sessions go by themselves.
import datetime
import json
import stat
import sys

import pytest

from host_tools import receiver, recordings
from host_tools.cli import main
from host_tools.receiver import Recording, ReceiverThread
from tests import test_receiver
from tests.test_receiver import paired_boards  # noqa: F401 (a fixture; sets test_receiver.STATE)


def _store(folder, device="kitchen", session=1, days_old=0, pcm=b"\x01\x02" * 1600):
    folder.mkdir(mode=0o700, exist_ok=True)
    rec = Recording(folder, device, 16000, session, "button", 0)
    rec.write(pcm)
    meta = rec.finish(0)
    if days_old:
        meta["start"] = (datetime.datetime.now(datetime.timezone.utc)
                         - datetime.timedelta(days=days_old)).isoformat(timespec="milliseconds")
        (folder / (meta["wav"][:-4] + ".json")).write_text(json.dumps(meta))
    return meta["wav"][:-4]


def _cli(capsys, *argv):
    code = main(["recordings", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_every_session(tmp_path, capsys):
    a = _store(tmp_path / "rec", session=1)
    b = _store(tmp_path / "rec", device="hall", session=2)
    code, out, _ = _cli(capsys, "list", "--recordings", str(tmp_path / "rec"))
    assert code == 0 and a in out and b in out and "2 session(s), 0.2 s of audio" in out


def test_delete_overwrites_then_removes_and_logs_metadata(tmp_path, capsys, monkeypatch):
    name = _store(tmp_path / "rec")
    wav = tmp_path / "rec" / f"{name}.wav"
    seen = {}
    real_unlink = type(wav).unlink

    def unlink(path, *a, **kw):
        if path.suffix == ".wav":
            seen["bytes"] = path.read_bytes()
        return real_unlink(path, *a, **kw)

    monkeypatch.setattr(type(wav), "unlink", unlink)
    code, out, _ = _cli(capsys, "delete", name[:12], "--recordings", str(tmp_path / "rec"))
    assert code == 0 and f"deleted {name}" in out
    assert set(seen["bytes"]) == {0}  # the audio was zeroed before the name went
    assert [p.name for p in (tmp_path / "rec").iterdir()] == [recordings.SESSION_LOG]
    [line] = [json.loads(x) for x in (tmp_path / "rec" / recordings.SESSION_LOG).read_text().splitlines()]
    assert line["event"] == "deleted" and line["device"] == "kitchen" and "wav" not in line


def test_export_copies_privately(tmp_path, capsys):
    name = _store(tmp_path / "rec")
    code, out, _ = _cli(capsys, "export", name, "--recordings", str(tmp_path / "rec"), "--out", str(tmp_path / "x"))
    assert code == 0
    copied = tmp_path / "x" / f"{name}.wav"
    assert copied.read_bytes() == (tmp_path / "rec" / f"{name}.wav").read_bytes()
    assert stat.S_IMODE(copied.stat().st_mode) == 0o600


@pytest.mark.parametrize("argv, message", [
    (["delete", "nosuch"], "no session named 'nosuch'"),
    (["delete", "kitchen"], "2 sessions named 'kitchen'"),
    (["export", "kitchen-"], "2 sessions"),
    (["play"], "play needs one or more session names"),
    (["purge", "kitchen"], "purge takes no session names"),
])
def test_mistakes_are_one_clear_line(tmp_path, capsys, argv, message):
    _store(tmp_path / "rec", session=1)
    _store(tmp_path / "rec", session=2)
    code, _, err = _cli(capsys, *argv, "--recordings", str(tmp_path / "rec"))
    assert code == 1 and err.count("\n") == 1 and message in err


def test_play_without_a_sound_device_says_where_the_file_is(tmp_path, capsys, monkeypatch):
    import types

    name = _store(tmp_path / "rec")

    def no_device(*a, **kw):
        raise OSError("no default output device")

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(play=no_device))
    code, _, err = _cli(capsys, "play", name, "--recordings", str(tmp_path / "rec"))
    assert code == 1 and "cannot play here" in err and f"{name}.wav" in err


def test_purge_keeps_what_is_younger(tmp_path, capsys):
    old = _store(tmp_path / "rec", session=1, days_old=40)
    new = _store(tmp_path / "rec", session=2, days_old=1)
    code, out, _ = _cli(capsys, "purge", "--older-than", "30", "--recordings", str(tmp_path / "rec"))
    assert code == 0 and "purged 1 session(s)" in out
    assert [m["wav"][:-4] for m in recordings.sessions(tmp_path / "rec")] == [new]
    assert not (tmp_path / "rec" / f"{old}.wav").exists()


def test_the_receiver_expires_sessions_past_their_retention(tmp_path):
    _store(tmp_path / "rec", session=1, days_old=8)
    keep = _store(tmp_path / "rec", session=2, days_old=6)
    log = []
    with ReceiverThread(recordings=tmp_path / "rec", log=log.append, state=test_receiver.STATE, keep_days=7):
        pass
    assert [m["wav"][:-4] for m in recordings.sessions(tmp_path / "rec")] == [keep]
    assert "receiver expired sessions=1 keep_days=7" in log
    assert receiver.SESSION_LOG == recordings.SESSION_LOG
