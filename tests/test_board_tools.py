# End to end, as a maker does it with a board on USB, against the virtual board's serial
# port and with the real tools throughout: `earshot flash` (esptool) puts MicroPython on a
# blank board, `earshot deploy` (mpremote's transport, mpy-cross) puts earshot, its
# settings and its pairing on it, the board boots, `earshot monitor` sees the boot and a
# push-to-talk session, and the receiver stored the audio.
import subprocess
import sys
import wave
from pathlib import Path

from esp_image import make_micropython_image
from serial_sim import EARSHOT, SerialSim, tool, wait_for

from host_tools import pairing
from host_tools.receiver import ReceiverThread

PASSWORD = "correct-horse-battery"


def test_bare_board_to_a_stored_session(tmp_path):
    image = make_micropython_image(tmp_path / "ESP32_GENERIC-20260406-v1.28.0.bin")
    credentials = pairing.Registry(tmp_path / "state").pair("desk")
    sim = SerialSim(tmp_path, flashed=False)
    receiver = ReceiverThread(recordings=tmp_path / "rec", log=lambda *a: None, state=tmp_path / "state",
                              verify=False).start()
    try:
        flashed = tool("earshot", "flash", "--port", sim.url, "--firmware", image, "--no-stub")
        assert flashed.returncode == 0, flashed.stdout + flashed.stderr
        assert "verified" in flashed.stdout

        checked = tool("esptool", "--port", sim.url, "--no-stub", "verify-flash", "0x1000", image)
        assert checked.returncode == 0 and "Verification successful" in checked.stdout, checked.stdout + checked.stderr

        deployed = tool("earshot", "deploy", "--port", sim.url, "--receiver", f"127.0.0.1:{receiver.port}",
                        "--pairing", credentials, "--wifi-ssid", "workshop", env={"EARSHOT_WIFI_PASSWORD": PASSWORD})
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "+ earshot/detector.mpy" in deployed.stdout and "I link up" in deployed.stdout
        assert PASSWORD not in deployed.stdout + deployed.stderr
        listed = tool("mpremote", "connect", sim.url, "fs", "ls", ":earshot")
        assert "app.mpy" in listed.stdout, listed.stdout + listed.stderr

        log = tmp_path / "board.log"
        monitor = subprocess.Popen([EARSHOT, "monitor", "--port", sim.url, "--until", "session_sent", "--timeout",
                                    "60", "--log", str(log)], stdout=subprocess.PIPE, text=True)
        assert "listening on" in monitor.stdout.readline()
        sim.type("r")  # the EN button
        wait_for(lambda: log.exists() and "why=receiver_up" in log.read_text(), 30,
                 lambda: "the board's link to come up; the monitor logged:\n" + (log.read_text() if log.exists() else ""))
        sim.type("p")  # push to talk
        assert monitor.wait(60) == 0, monitor.stdout.read()
    finally:
        receiver.wait_idle(10)
        receiver.stop()
        out = sim.stop()
    seen = log.read_text()
    assert "I main boot firmware=earshot-0.1" in seen and "I main ready board=sim device=desk" in seen
    assert "new=streaming why=button" in seen
    assert len(receiver.sessions) == 1, out
    session = receiver.sessions[0]
    assert session["trigger"] == "button" and session["device"] == "desk"
    with wave.open(str(tmp_path / "rec" / session["wav"])) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 16000 * 0.5
    audited = tool("earshot", "audit", sim.trace)  # the ring was blue while, and only while, audio left
    assert audited.returncode == 0 and "1 lit period" in audited.stdout, audited.stdout + audited.stderr


def test_the_hardware_smoke_test_itself_passes_on_the_virtual_board(tmp_path):
    # An RFC 2217 port carries DTR and RTS, so esptool's reset into download mode and
    # `monitor --reset` reach the virtual board as they reach a board on USB: the opt-in
    # hardware test (tests/test_hardware.py) runs here unchanged, with --port.
    image = make_micropython_image(tmp_path / "ESP32_GENERIC-20260406-v1.28.0.bin")
    sim = SerialSim(tmp_path, serial="rfc2217:127.0.0.1:0", flashed=False)
    try:
        assert sim.url.startswith("rfc2217://")
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(Path(__file__).parent / "test_hardware.py"), "--port", sim.url,
                               "--firmware", str(image)], capture_output=True, text=True, timeout=300)
    finally:
        sim.stop()
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]
