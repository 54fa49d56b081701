# `earshot audit` and host_tools.trace on small synthetic traces: each privacy rule
# passed and broken (at its exact edge where it has one), bad trace files, the output.
import json

import pytest

from host_tools.audit import audit
from host_tools.errors import CommandError
from host_tools.trace import is_amber, is_listening, is_muted, read_trace, ring_states

BLUE = [[0, 0, 60]] * 12
DARK = [[0, 0, 0]] * 12
RED = [[60, 0, 0]] * 12
AMBER = [[255, 100, 0]] * 12


def led(t, rgb):
    return {"t": t, "ev": "led", "rgb": rgb}


def out(t, n):
    return {"t": t, "ev": "net", "dir": "out", "bytes": n}


def mic(t, on):
    return {"t": t, "ev": "mic", "on": on}


def power(t, on):
    return {"t": t, "ev": "power", "on": on}


def button(t, pressed):
    return {"t": t, "ev": "button", "pressed": pressed}


def fs(t, n, path="/settings.json"):
    return {"t": t, "ev": "fs", "path": path, "bytes": n}


def rules(events):
    return [v.rule for v in audit(events)]


def write_trace(path, events):
    path.write_text("".join(json.dumps(ev) + "\n" for ev in events))
    return str(path)


# --- ring rules ---------------------------------------------------------------

def test_listening_needs_a_quarter_of_the_pixels_blue_dominant():
    assert is_listening([[0, 0, 16]] * 3 + [[0, 0, 0]] * 9)
    assert not is_listening([[0, 0, 16]] * 2 + [[0, 0, 0]] * 10)
    assert not is_listening([[0, 0, 15]] * 12)  # too dim
    assert is_listening([[10, 10, 20]])  # b = 2 * max(r, g)
    assert not is_listening([[11, 0, 20]])
    assert not is_listening([])


def test_muted_and_amber_are_told_apart():
    assert is_muted(RED) and not is_amber(RED)
    assert is_amber(AMBER) and not is_muted(AMBER)  # though r >= 2 * max(g, b)
    assert is_amber([[32, 12, 0]] * 12)  # amber at low brightness
    assert is_muted([[255, 63, 0]] * 12) and is_amber([[255, 64, 0]] * 12)
    assert not is_muted([[15, 0, 0]] * 12) and not is_amber(BLUE) and not is_muted(BLUE)


def test_ring_state_follows_file_order_and_goes_dark_at_power_events():
    events = [led(1.0, BLUE), out(1.0, 10), power(2.0, False), out(2.0, 10)]
    assert [ring.listening for _, ring in ring_states(events)] == [True, True, False, False]


# --- reading traces -----------------------------------------------------------

def test_trace_is_read_in_order_and_unknown_events_are_kept(tmp_path):
    events = [{"t": 0, "ev": "start", "wav": None}, {"t": 0.5, "ev": "thermal", "c": 41}, out(1, 5)]
    assert read_trace(write_trace(tmp_path / "t.jsonl", events)) == events


def test_a_cut_short_last_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(out(1, 5)) + '\n{"t": 2.0, "ev": "ne')
    warnings = []
    assert read_trace(str(path), warnings.append) == [out(1, 5)]
    assert warnings == [f"{path} line 2: cut short (killed run?); ignored"]


@pytest.mark.parametrize("line, problem", [
    ("garbage", "line 2: not JSON"),
    ('{"ev": "led", "rgb": []}', 'line 2: event needs a numeric "t"'),
    ('{"t": "1", "ev": "net"}', 'line 2: event needs a numeric "t"'),
    ('{"t": NaN, "ev": "net"}', 'line 2: event needs a numeric "t"'),
    ('{"t": 0.5, "ev": "end"}', "line 2: t=0.5 goes back from t=1"),
    ('{"t": 2, "ev": "net", "dir": "out"}', 'line 2: net event needs "bytes"'),
    ("[1, 2]", "line 2: not a JSON object"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, earshot, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(out(1, 5)) + "\n" + line + "\n" + json.dumps(out(3, 5)) + "\n")
    status, stdout, stderr = earshot("audit", path)
    assert status == 1 and stdout == ""
    assert stderr.startswith(f"earshot: {path} {problem}") and stderr.count("\n") == 1


def test_a_missing_trace_is_one_error(tmp_path, earshot):
    status, _, stderr = earshot("audit", tmp_path / "nope.jsonl")
    assert status == 1
    assert stderr == (f"earshot: {tmp_path / 'nope.jsonl'}: cannot read trace (No such file or directory); "
                      f"check the path\n")


def test_an_empty_trace_is_an_error_not_a_pass(tmp_path, earshot):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    status, stdout, stderr = earshot("audit", path)
    assert (status, stdout) == (1, "") and "holds no events" in stderr


def test_a_malformed_ring_frame_is_one_error(tmp_path, earshot):
    status, _, stderr = earshot("audit", write_trace(tmp_path / "t.jsonl", [led(1, [[1, 2]])]))
    assert status == 1 and stderr.startswith("earshot: led frame [[1, 2]] is not a list of [r, g, b]")


# --- P1 dark ring, quiet link -------------------------------------------------

def test_p1_exactly_2048_bytes_in_one_second_passes_and_one_more_fails():
    sends = [out(0.1 * i, 256) for i in range(8)]  # 2048 B within 0.7 s
    assert rules(sends) == []
    assert rules(sends + [out(0.99, 1)]) == ["P1"]


def test_p1_one_second_window_is_half_open():
    burst = [out(0.0, 256)] * 8
    assert rules(burst + [out(1.0, 1)]) == []
    assert rules(burst + [out(0.999, 1)]) == ["P1"]


def test_p1_ten_minute_budget_edges():
    sends = [out(37.0 * i, 256) for i in range(16)]  # 4096 B over 555 s
    assert rules(sends) == []
    assert rules(sends + [out(599.9, 1)]) == ["P1"]
    assert rules(sends + [out(600.0, 1)]) == []  # the send at t=0 has left the window


def test_p1_reports_once_per_excess_with_the_window_in_the_message():
    violations = audit([out(round(0.1 * i, 3), 250) for i in range(30)])  # 2500 B/s for 3 s
    assert [str(v) for v in violations] == [
        "P1 t=0.800 2250 B sent with the ring not listening in 1 s from t=0.000 (limit 2048 B)",
        "P1 t=1.600 4250 B sent with the ring not listening in 600 s from t=0.000 (limit 4096 B)",
    ]


def test_p1_bytes_sent_while_listening_do_not_count():
    session = [led(1.0, BLUE)] + [out(1.0 + 0.032 * i, 1024) for i in range(300)] + [led(11.0, DARK)]
    heartbeats = [out(30.0 * i + 20, 60) for i in range(120)]  # an hour of heartbeats
    assert audit(session + heartbeats) == []


def test_p1_the_ring_is_dark_before_the_first_led_event():
    assert rules([out(0.0, 256)] * 8 + [out(0.5, 1), led(1.0, BLUE)]) == ["P1"]


# --- P2 lit before sent -------------------------------------------------------

def test_p2_an_audio_sized_send_needs_the_listening_ring():
    assert rules([out(1.0, 256)]) == []
    assert rules([out(1.0, 257)]) == ["P2"]
    assert rules([led(1.0, BLUE), out(1.0, 1024)]) == []


def test_p2_file_order_decides_at_equal_times():
    assert rules([led(1.0, BLUE), out(2.0, 1024), led(2.0, DARK)]) == []
    assert rules([led(1.0, BLUE), led(2.0, DARK), out(2.0, 1024)]) == ["P2"]
    assert rules([out(1.0, 1024), led(1.0, BLUE)]) == ["P2"]


def test_p2_ring_lit_too_dim_does_not_count():
    assert rules([led(1.0, [[0, 0, 15]] * 12), out(1.1, 1024)]) == ["P2"]


def test_p2_one_report_per_dark_period_counts_the_sends():
    events = [out(1.0 + 0.5 * i, 300) for i in range(5)] + [led(4.0, BLUE), led(5.0, DARK), out(6.0, 300)]
    p2 = [v for v in audit(events) if v.rule == "P2"]
    assert [v.t for v in p2] == [1.0, 6.0]
    assert p2[0].message.endswith("; 5 such sends, 1500 B, until t=3.000")


# --- P3 mute cuts the mic -----------------------------------------------------

MUTE_AT_1 = [mic(0.0, True), button(1.0, True), led(1.0, RED)]


def test_p3_mic_off_within_50_ms_of_red_passes_later_fails():
    assert rules(MUTE_AT_1 + [mic(1.05, False), led(9.0, RED)]) == []
    assert rules(MUTE_AT_1 + [mic(1.051, False), led(9.0, RED)]) == ["P3"]
    assert rules(MUTE_AT_1 + [{"t": 9.0, "ev": "end"}]) == ["P3"]  # never went off
    assert audit(MUTE_AT_1 + [mic(1.2, False)])[0].t == 1.0  # reported where red appeared


def test_p3_mic_turned_on_while_red():
    muted = MUTE_AT_1 + [mic(1.01, False)]
    assert rules(muted + [mic(3.0, True)]) == ["P3"]
    assert rules(muted + [button(3.0, True), led(3.0, DARK), mic(3.01, True)]) == []


def test_p3_amber_is_not_mute():
    assert rules([mic(0.0, True), led(1.0, AMBER), out(2.0, 100), mic(3.0, True)]) == []


def test_p3_mute_survives_a_power_cut():
    cut = MUTE_AT_1 + [mic(1.01, False), power(5.0, False), power(6.0, True)]
    assert rules(cut + [led(8.0, RED), mic(10.0, False), {"t": 20.0, "ev": "end"}]) == []
    assert rules(cut + [led(8.001, RED), {"t": 20.0, "ev": "end"}]) == ["P3"]  # red too late
    assert rules(cut + [mic(6.5, True), led(7.0, RED), mic(7.01, False)]) == ["P3"]  # mic before any press
    assert rules(cut + [led(7.0, RED), button(9.0, True), led(9.0, DARK), mic(9.0, True)]) == []


def test_p3_mute_survives_two_power_cuts_in_a_row():
    cut = MUTE_AT_1 + [mic(1.01, False), power(5.0, False), power(6.0, True), power(6.5, False),
                       power(7.0, True)]
    assert rules(cut + [mic(7.5, True)]) == ["P3"]


def test_p3_a_power_cut_while_not_muted_owes_nothing():
    events = [mic(0.0, True), power(5.0, False), power(6.0, True), mic(6.5, True), {"t": 20.0, "ev": "end"}]
    assert rules(events) == []


# --- P4 no audio at rest ------------------------------------------------------

def test_p4_single_write_limit():
    assert rules([fs(1.0, 4096)]) == []
    assert rules([fs(1.0, 4097, "/rec.raw")]) == ["P4"]


def test_p4_ten_minute_budget_edges():
    writes = [fs(10.0 * i, 4096) for i in range(4)]  # 16384 B in 30 s
    assert rules(writes) == []
    assert rules(writes + [fs(599.0, 1)]) == ["P4"]
    assert rules(writes + [fs(600.0, 4096)]) == []  # the first write left the window


def test_p4_streaming_audio_to_flash_is_caught_at_once():
    violations = audit([fs(0.125 * i, 4000, "/rec.raw") for i in range(80)])  # 32 kB/s for 10 s
    assert [(v.rule, v.t) for v in violations] == [("P4", 0.5)]


# --- the command --------------------------------------------------------------

CLEAN = [{"t": 0.0, "ev": "start", "board": "sim", "wav": None, "rate": 16000}, mic(0.0, True),
         led(0.0, DARK), out(0.5, 120), led(2.0, BLUE), out(2.01, 1024), out(2.05, 1024),
         led(3.0, DARK), {"t": 60.0, "ev": "end"}]


def test_clean_trace_exits_0_with_a_summary(tmp_path, earshot):
    status, stdout, stderr = earshot("audit", write_trace(tmp_path / "t.jsonl", CLEAN))
    assert (status, stdout, stderr) == (0, "audit: OK, 9 events, 60.0 s, 1 lit period\n", "")


def test_violations_print_one_line_each_and_exit_1(tmp_path, earshot):
    events = CLEAN[:-1] + [out(4.0, 1024), fs(5.0, 8000, "/a.raw"), CLEAN[-1]]
    status, stdout, _ = earshot("audit", write_trace(tmp_path / "t.jsonl", events))
    assert status == 1
    assert stdout.splitlines() == [
        "P2 t=4.000 1024 B sent with the ring not listening (audio-sized: over 256 B)",
        "P4 t=5.000 8000 B written to /a.raw in one write (limit 4096 B)",
        "audit: 2 violations",
    ]


def test_json_report(tmp_path, earshot):
    events = CLEAN[:-1] + [out(4.0, 1024), CLEAN[-1]]
    status, stdout, _ = earshot("audit", write_trace(tmp_path / "t.jsonl", events), "--json")
    report = json.loads(stdout)
    assert status == 1
    assert report == {"ok": False, "events": 10, "duration": 60.0, "lit_periods": 1, "violations": [
        {"rule": "P2", "t": 4.0,
         "message": "1024 B sent with the ring not listening (audio-sized: over 256 B)"}]}


def test_a_binary_file_is_a_command_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps(out(1, 5)).encode() + b"\n\xff\xfe\x00\n")
    with pytest.raises(CommandError, match="line 2: not UTF-8 text"):
        read_trace(str(path))
