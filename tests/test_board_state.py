# The board tells its receiver whether it is muted (firmware/earshot/link.py): in the hello,
# and as a `state` event when that changes, rate-limited so that even a mute/unmute storm
# keeps the dark ring's traffic within P1. Checked on the virtual board against a receiver
# in this process, with the auditor's view of the wire.
import pytest

from host_tools import pairing
from host_tools.audit import audit
from host_tools.receiver import ReceiverThread
from tests.simboard import make_wav, sim

STATE_EVENT_BYTES = (74, 75)  # {"type": "state", ...} for idle / muted, in one TLS record


@pytest.fixture
def rx(tmp_path):
    log = []
    bundle = pairing.Registry(tmp_path / "state").pair("earshot")
    with ReceiverThread(recordings=tmp_path / "rec", log=log.append, state=tmp_path / "state", verify=False) as r:
        r.log, r.bundle = log, bundle
        yield r


def _run(rx, tmp_path, capsys, seconds, *args):
    wav = make_wav(tmp_path / "room.wav", seconds)
    run = sim(tmp_path, capsys, "--receiver", f"127.0.0.1:{rx.port}", "--pairing", rx.bundle, *args, wav=wav)
    assert run.code == 0, run.err
    assert rx.wait_idle(5)  # the receiver has handled all the board sent
    assert audit(run.events) == []
    return run


def _heard(rx):
    # What the receiver heard of the board's state: the hello's, then each state event's.
    out = []
    for line in rx.log:
        if line.startswith("receiver hello "):
            out.append(line.split(" state=")[1].split()[0])
        elif line.startswith("receiver state "):
            out.append(line.split(" state=")[1].split()[0])
    return out


def _state_sends(run):
    return [e for e in run.sent() if e["bytes"] in STATE_EVENT_BYTES]


def test_mute_and_unmute_reach_the_receiver_at_once(rx, tmp_path, capsys):
    run = _run(rx, tmp_path, capsys, 20, "--hold", "2:2", "--hold", "8:2", "--press", 12)
    assert _heard(rx) == ["idle", "muted", "idle"]
    muted_at, unmuted_at = 3.5, 9.5  # 1.5 s into each hold
    sends = _state_sends(run)
    assert [round(e["t"] - t, 2) <= 0.05 for e, t in zip(sends, (muted_at, unmuted_at))] == [True, True]
    assert len(sends) == 2  # the session's start and end say nothing more: its own events do
    assert len(rx.sessions) == 1


def test_a_board_that_boots_muted_says_so_in_its_hello(rx, tmp_path, capsys):
    _run(rx, tmp_path, capsys, 6, "--hold", "1:2")
    rx.log.clear()
    run = _run(rx, tmp_path, capsys, 6)  # same board folder: the mute was saved
    assert _heard(rx) == ["muted"]
    assert _state_sends(run) == []
    assert rx.receiver.boards["earshot"].reported == "muted"


def test_a_mute_storm_is_coalesced_within_p1(rx, tmp_path, capsys):
    # 100 mutes and unmutes, one every 2 s for 200 s, then 400 s of quiet: the receiver
    # hears the first three at once, then at most one a minute, and last the state the board
    # ended in; the ring was dark throughout and P1 holds (audit() in _run).
    holds = [a for t in range(0, 200, 2) for a in ("--hold", f"{t + 1}:1.6")]
    run = _run(rx, tmp_path, capsys, 600, *holds)
    toggles = [line for line in run.serial() if "why=long_press" in line]
    assert len(toggles) == 100
    final = "muted" if "new=muted" in toggles[-1] else "idle"
    heard = _heard(rx)
    assert heard[0] == "idle" and heard[-1] == final
    sends = _state_sends(run)
    assert len(sends) == len(heard) - 1 <= 3 + 10  # the hello carries the first
    assert [round(e["t"], 1) for e in sends[:3]] == [2.5, 4.5, 6.5]  # the burst: at once
    t = [e["t"] for e in sends]
    # Any span holds at most the burst plus one per minute of its length.
    assert all(j - i + 1 <= 3 + (t[j] - t[i]) / 60 + 1e-6 for i in range(len(t)) for j in range(i, len(t)))
    assert sends[-1]["t"] <= 200 + 60  # the last state arrives within a minute of the storm's end
    dark = sum(e["bytes"] for e in run.of("net") if e["dir"] == "out")
    assert dark <= 4096
