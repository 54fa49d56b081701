# The virtual board end to end: the unmodified firmware under MicroPython, the receiver
# on loopback, and the checks an auditor with a sniffer and a camera would make.
import json
import socket
import threading
import time

import numpy as np
import pytest

from host_tools import pairing, reference
from host_tools.audio import load_wav
from host_tools.audit import audit
from host_tools.paths import DATA
from host_tools.trace import is_amber, is_listening, is_muted
from tests.simboard import find, make_wav, sim

DEMO = DATA / "speech.wav"
FRAME = 320


def _lit_at(events, t):
    rgb = []
    for e in events:
        if e["t"] > t:
            break
        if e["ev"] == "led":
            rgb = e["rgb"]
    return rgb


def _audit_clean(run):
    violations = audit(run.events)
    assert violations == [], [str(v) for v in violations]


def test_push_to_talk_streams_the_session_bit_for_bit(tmp_path, capsys):
    # What the receiver stores is exactly what the board sent: the mic's samples through
    # the pre-roll's G.711 u-law (reference.sent), nothing lost, doubled or reordered.
    run = sim(tmp_path, capsys, "--press", 3.0, "--set", "gain_db=0", "--set", "dc_removal=false")
    assert run.code == 0, run.err
    [(meta, stored)] = run.sessions()
    heard, _ = load_wav(DEMO)
    [start] = find(reference.sent(heard, 0, False), stored)  # one exact, contiguous match
    mic_on = run.of("mic")[0]
    assert mic_on["on"] and mic_on["t"] == 0.0
    assert start % FRAME == 0  # whole frames since the mic started
    # A short press acts on release (a long one mutes): released at 3.15 s, debounced and
    # polled by ~3.2 s, the session starts with the second before that.
    assert 2.1 <= start / 16000 <= 2.3
    end = (start + len(stored)) / 16000
    assert 6.5 <= end <= 8.5  # after the speech (3.3-6.6 s), ended by end of speech
    assert meta["trigger"] == "button" and meta["dropped_frames"] == 0
    assert any("why=end_of_speech" in line for line in run.serial())
    _audit_clean(run)


def test_default_settings_follow_the_documented_conversion(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--press", 3.0)
    assert run.code == 0, run.err
    [(meta, stored)] = run.sessions()
    heard, _ = load_wav(DEMO)
    converted = reference.sent(heard, gain_db=12, dc_removal=True)  # the defaults
    [start] = find(converted, stored)
    assert 2.1 <= start / 16000 <= 2.3
    window = heard[start:start + len(stored)].astype(float)
    loud = (np.abs(window) > 500) & (np.abs(stored) < 32000)
    assert 3.8 < np.median(stored[loud] / window[loud]) < 4.2  # +12 dB, where it did not clip
    _audit_clean(run)


def test_ring_is_blue_before_the_first_audio_byte_and_after_the_last(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--press", 3.0)
    big = [e for e in run.sent() if e["bytes"] > 256]
    assert big, "the session sent audio"
    rgb = []
    lit_at_send = []
    for e in run.events:
        if e["ev"] == "led":
            rgb = e["rgb"]
        elif e in big:
            lit_at_send.append(is_listening(rgb))
    assert all(lit_at_send)
    last_audio = big[-1]["t"]
    dark_after = [e for e in run.of("led") if e["t"] >= last_audio and not is_listening(e["rgb"])]
    assert dark_after, "the ring goes dark after the session"


def test_idle_listening_for_minutes_sends_no_audio(tmp_path, capsys):
    wav = make_wav(tmp_path / "room.wav", 600, bursts=[(60, 63), (300, 302.5)])
    run = sim(tmp_path, capsys, wav=wav)
    assert run.code == 0, run.err
    assert run.sessions() == []
    out = [e for e in run.of("net") if e["dir"] == "out"]
    assert max(e["bytes"] for e in run.sent()) < 256  # hello and heartbeats only, after TLS set-up
    assert sum(e["bytes"] for e in out) < 4096
    assert not any(is_listening(e["rgb"]) for e in run.of("led"))
    assert run.of("fs") == []  # nothing written to the board's flash
    _audit_clean(run)


def test_mute_cuts_the_mic_and_survives_a_power_cycle(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--hold", "1.0:2.0", "--press", 4.0, "--power-cycle", 5.0,
              "--press", 7.5, "--hold", "8.5:2.0", "--press", 10.8)
    assert run.code == 0, run.err
    red = [e for e in run.of("led") if is_muted(e["rgb"])]
    assert red, "the ring showed red"
    muted_at = red[0]["t"]
    assert 2.5 <= muted_at <= 2.6  # 1.5 s into the hold
    mic = run.of("mic")
    off = [e for e in mic if not e["on"] and e["t"] >= muted_at]
    assert off and off[0]["t"] - muted_at <= 0.05
    # From the mute to the unmute 1.5 s into the second hold (10.0 s), the mic stays off,
    # through the power cycle: the board boots muted.
    assert not [e for e in mic if e["on"] and muted_at <= e["t"] < 10.0]
    assert [e["on"] for e in run.of("power")] == [False, True]
    assert any("state old=boot new=muted why=saved_mute" in line for line in run.serial())
    assert sum("press_ignored state=muted" in line for line in run.serial()) == 2
    out_while_muted = [e for e in run.sent() if muted_at <= e["t"] < 10.0]
    assert all(e["bytes"] < 256 for e in out_while_muted)
    assert [e for e in mic if e["on"] and e["t"] >= 10.0], "unmuting turns the mic back on"
    settings = json.loads((run.board / "settings.json").read_text())
    assert settings["muted"] is False
    [(meta, _)] = run.sessions()  # the press after unmuting streams
    assert meta["trigger"] == "button"
    _audit_clean(run)


def test_receiver_outage_shows_amber_sends_nothing_and_reconnects(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--receiver-outage", "1.0:3.0", "--press", 2.5, "--press", 8.0)
    assert run.code == 0, run.err
    amber = [e for e in run.of("led") if is_amber(e["rgb"])]
    assert amber and 1.0 <= amber[0]["t"] < 1.5
    assert any("press_ignored state=offline" in line for line in run.serial())
    during = [e for e in run.of("net") if e["dir"] == "out" and 1.0 <= e["t"] < 4.0]
    assert sum(e["bytes"] for e in during) < 256  # no audio sent to nowhere
    assert sum(line.startswith("I link up") for line in run.serial()) == 2
    [(meta, _)] = run.sessions()
    assert meta["trigger"] == "button"
    _audit_clean(run)


def _slow_ponging_receiver(state, delay_s):
    # A live receiver on a busy host: it answers each ping only after delay_s of real time.
    registry = pairing.Registry(state)
    bundle = registry.pair("earshot")
    tls = registry.server_context()
    server = socket.create_server(("127.0.0.1", 0))
    pings = []

    def serve():
        conn, _ = server.accept()
        with tls.wrap_socket(conn, server_side=True) as conn, conn.makefile("rb") as lines:
            for line in lines:
                if b'"ping"' in line:
                    pings.append(line)
                    time.sleep(delay_s)
                    conn.sendall(b'{"type":"pong"}\n')

    threading.Thread(target=serve, daemon=True).start()
    return server, bundle, pings


def test_a_slow_receiver_in_real_time_is_not_taken_for_a_dead_one(tmp_path, capsys):
    # The simulated clock runs hundreds of times faster than real time; a pong that takes
    # 0.3 s of host time must still count as prompt (it would on a LAN), or test runs on a
    # loaded machine see links drop and sessions go missing.
    server, bundle, pings = _slow_ponging_receiver(tmp_path / "state", 0.3)
    with server:
        wav = make_wav(tmp_path / "room.wav", 70)
        run = sim(tmp_path, capsys, "--receiver", "127.0.0.1:%d" % server.getsockname()[1], "--pairing", bundle,
                  wav=wav)
    assert run.code == 0, run.err
    assert len(pings) >= 3
    links = [line.split(" receiver=")[0] for line in run.serial() if " link " in line]
    assert links == ["I link up", "I link lost"], links  # lost only as the run ends


def test_bad_settings_file_boots_on_defaults_with_a_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"gain_db": 12, "receiver_port": ')  # cut off mid-write
    run = sim(tmp_path, capsys, "--settings", bad)
    assert run.code == 0, run.err
    errors = [line for line in run.serial() if line.startswith("E ")]
    assert errors[0] == ("E settings unreadable file=settings.json error=syntax_error_in_JSON "
                         "using=defaults kept=settings.json.bad")
    assert errors[1:] == ["E main wifi error=no_ssid action=set_wifi_ssid_in_settings",
                          "E link no_receiver action=set_receiver_host_in_settings"]
    assert (run.board / "settings.json.bad").read_text() == bad.read_text()
    assert any(line.startswith("I main ready") for line in run.serial())


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEfmt garbage", b"\x00" * 100])
def test_corrupt_wav_is_one_clear_error(tmp_path, capsys, content):
    wav = tmp_path / "broken.wav"
    wav.write_bytes(content)
    run = sim(tmp_path, capsys, wav=wav)
    assert run.code == 1
    assert run.err.count("\n") == 1 and run.err.startswith("earshot: ") and "broken.wav" in run.err


def test_unknown_board_is_one_clear_error(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--board", "nope")
    assert run.code == 1
    assert run.err == "earshot: unknown board 'nope'; known boards: esp32_devkitc, esp32s3_devkitc1, sim\n"


def test_other_rates_and_channels_are_converted(tmp_path, capsys):
    import wave

    heard, _ = load_wav(DEMO)
    stereo = np.repeat(heard[:16000 * 4].reshape(-1, 1), 2, axis=1)
    with wave.open(str(tmp_path / "s.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(stereo.astype("<i2").tobytes())
    run = sim(tmp_path, capsys, wav=tmp_path / "s.wav")
    assert run.code == 0
    assert "mixed 2 channels to mono" in run.out


def test_a_session_ends_at_its_maximum_length(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--press", 3.0, "--set", "max_session_s=2")
    assert run.code == 0, run.err
    [(meta, stored)] = run.sessions()
    assert any("why=max_length" in line for line in run.serial())
    assert abs(len(stored) / 16000 - 3.0) <= 0.04  # 1 s pre-roll + 2 s
    _audit_clean(run)


def test_mic_input_runs_live_from_a_stream(tmp_path, capsys, monkeypatch):
    # `--mic` with a fake microphone: blocks of the demo recording, as a sound card
    # would deliver them. The board hears them in real time and streams the press.
    from host_tools.sim import live

    heard, _ = load_wav(DEMO)

    def fake_microphone():
        for i in range(0, 16000 * 8, 320):
            yield heard[i:i + 320]

    monkeypatch.setattr(live, "open_microphone", fake_microphone)
    run = sim(tmp_path, capsys, "--mic", "--press", 3.0, "--set", "gain_db=0", "--set", "dc_removal=false")
    assert run.code == 0, run.err
    [(meta, stored)] = run.sessions()
    [start] = find(reference.sent(heard, 0, False), stored)
    assert 2.1 <= start / 16000 <= 2.3


def test_mic_without_a_sound_device_is_one_clear_error(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sounddevice(name, *args, **kw):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_sounddevice)
    run = sim(tmp_path, capsys, "--mic")
    assert run.code == 1
    assert run.err.startswith("earshot: no audio input available (PortAudio library not found)")
    assert run.err.count("\n") == 1


def test_wifi_lost_mid_session_ends_it_amber_stores_nothing_and_comes_back(tmp_path, capsys):
    wav = make_wav(tmp_path / "talk.wav", 30, bursts=[(3.0, 9.0)])
    run = sim(tmp_path, capsys, "--press", 3.0, "--wifi-outage", "5.0:4.0", wav=wav)
    assert run.code == 0, run.err
    serial = run.serial()
    assert any(line.startswith("W app session_failed") for line in serial)
    assert [e["t"] for e in run.of("led") if is_amber(e["rgb"])][0] == pytest.approx(5.0, abs=0.05)
    assert sum(e["bytes"] for e in run.of("net") if e["dir"] == "out" and 5.0 <= e["t"] < 9.0) == 0
    ups = [e["t"] for e in run.of("serial") if e["line"].startswith("I link up")]
    assert len(ups) == 2 and 9.0 < ups[1] < 9.5, ups  # the link waits for Wi-Fi, then comes back at once
    assert run.sessions() == []  # the cut session is not kept in part
    _audit_clean(run)


def test_receiver_restarted_mid_session_keeps_nothing_partial(tmp_path, capsys):
    wav = make_wav(tmp_path / "talk.wav", 30, bursts=[(3.0, 9.0)])
    run = sim(tmp_path, capsys, "--press", 3.0, "--receiver-outage", "5.0:2.0", "--press", 15.0, wav=wav)
    assert run.code == 0, run.err
    assert any(line.startswith("W app session_failed") for line in run.serial())
    [(meta, _)] = run.sessions()  # only the second, whole session
    assert meta["session"] == 2 and meta["trigger"] == "button"
    _audit_clean(run)
