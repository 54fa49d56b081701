# `earshot recordings list|play|export|delete|purge`: what the receiver kept, in the
# user's hands. A session is <stem>.wav + <stem>.json in the recordings folder; it is
# named by its stem, or any prefix of it that names one session. Deleting overwrites the
# audio with zeros before unlinking it (on flash or copy-on-write filesystems that is
# best effort: the filesystem may keep old blocks). Every deletion is a line of metadata
# in the session log.
import datetime
import json
import os
import shutil
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.private import make_private_dir, open_private

SESSION_LOG = "sessions.jsonl"


def add_arguments(parser):
    parser.add_argument("action", choices=("list", "play", "export", "delete", "purge"))
    parser.add_argument("sessions", nargs="*", metavar="SESSION",
                        help="session names (as `list` shows them) or a prefix naming one")
    parser.add_argument("--recordings", default="recordings", metavar="DIR",
                        help="the receiver's recordings folder (default ./recordings)")
    parser.add_argument("--out", metavar="DIR", help="export: the folder to copy to")
    parser.add_argument("--older-than", type=float, metavar="DAYS",
                        help="purge: sessions that started more than DAYS ago (default: all)")


def run(args):
    folder = Path(args.recordings)
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a recordings folder; give the receiver's --recordings")
    action = args.action
    if action == "list":
        return _list(folder)
    if action == "purge":
        if args.sessions:
            raise CommandError("purge takes no session names; use delete for those")
        gone = purge(folder, args.older_than)
        print(f"purged {len(gone)} session(s)")
        return 0
    if not args.sessions:
        raise CommandError(f"{action} needs one or more session names (see `earshot recordings list`)")
    found = [find(folder, name) for name in args.sessions]
    if action == "play":
        for meta in found:
            play(folder, meta)
    elif action == "export":
        if not args.out:
            raise CommandError("export needs --out DIR")
        for meta in found:
            print(export(folder, meta, Path(args.out)))
    else:
        for meta in found:
            delete(folder, meta, "deleted by user")
            print(f"deleted {meta['wav'][:-4]}")
    return 0


def sessions(folder):
    """Metadata of every stored session, oldest first (damaged .json files are skipped)."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            meta = json.loads(path.read_text())
            if isinstance(meta, dict) and meta.get("wav") == path.stem + ".wav":
                out.append(meta)
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda m: m.get("start", ""))


def find(folder, name):
    matches = [m for m in sessions(folder) if m["wav"][:-4] == name] or \
              [m for m in sessions(folder) if m["wav"].startswith(name)]
    if len(matches) != 1:
        what = "no session" if not matches else f"{len(matches)} sessions"
        raise CommandError(f"{what} named {name!r} in {folder}; `earshot recordings list` shows the names")
    return matches[0]


def _list(folder):
    found = sessions(folder)
    for m in found:
        print(f"{m['wav'][:-4]:40s} {m['start'][:19].replace('T', ' ')}  {m['trigger']:6s} "
              f"{m['duration_s']:6.2f} s  {m['device']}")
    total = sum(m["duration_s"] for m in found)
    print(f"{len(found)} session(s), {total:.1f} s of audio in {folder}")
    return 0


def play(folder, meta):
    from host_tools.audio import load_wav

    pcm, _ = load_wav(folder / meta["wav"])
    try:
        import sounddevice

        sounddevice.play(pcm, 16000, blocking=True)
    except Exception as e:  # PortAudio missing, no output device...
        raise CommandError(f"cannot play here ({e}); the file is {folder / meta['wav']}") from None


def export(folder, meta, out):
    make_private_dir(out, "--out")
    for name in (meta["wav"], meta["wav"][:-4] + ".json"):
        with open(folder / name, "rb") as src, open_private(out / name, exclusive=False) as dst:
            shutil.copyfileobj(src, dst)
    return out / meta["wav"]


def delete(folder, meta, reason):
    wav = folder / meta["wav"]
    try:
        size = wav.stat().st_size
        with open(wav, "r+b") as f:  # the audio itself, not only the name
            f.write(bytes(size))
            f.flush()
            os.fsync(f.fileno())
        wav.unlink()
    except FileNotFoundError:
        pass
    (folder / (meta["wav"][:-4] + ".json")).unlink(missing_ok=True)
    note(folder, {"event": "deleted", "reason": reason, "device": meta.get("device"),
                  "session": meta.get("session"), "start": meta.get("start")})


def purge(folder, older_than_days=None, now=None):
    """Deletes the sessions that started more than older_than_days ago (all if None)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    gone = []
    for meta in sessions(folder):
        try:
            started = datetime.datetime.fromisoformat(meta["start"])
        except (KeyError, ValueError):
            continue
        if older_than_days is None or now - started > datetime.timedelta(days=older_than_days):
            delete(folder, meta, "retention" if older_than_days is not None else "purge")
            gone.append(meta)
    return gone


def note(folder, meta):
    # One line of metadata in the session log (never audio, never keys).
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    with open_private(Path(folder) / SESSION_LOG, exclusive=False, append=True) as f:
        f.write(json.dumps({"logged": stamp, **meta}).encode() + b"\n")
