# A smoke test on a real board, opt in: `pytest tests/test_hardware.py --port /dev/ttyUSB0`
# (an ESP32-DevKitC or ESP32-S3-DevKitC-1 on USB; it is erased). Flash MicroPython, deploy
# earshot, watch it boot. Skipped without --port; the same steps run against the virtual
# board in test_board_tools.py on every `make test`.
import pytest
from serial_sim import tool


@pytest.fixture
def port(request):
    port = request.config.getoption("--port")
    if not port:
        pytest.skip("no real board: give --port /dev/ttyUSB0 (or the board's port) to run the hardware smoke test")
    return port


def test_flash_deploy_boot(port, request):
    firmware = request.config.getoption("--firmware")
    source = ["--firmware", firmware] if firmware else ["--version", request.config.getoption("--micropython")]
    flashed = tool("earshot", "flash", "--port", port, *source, timeout=300)
    assert flashed.returncode == 0, flashed.stdout + flashed.stderr
    assert "verified" in flashed.stdout

    deployed = tool("earshot", "deploy", "--port", port, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "I main boot firmware=earshot" in deployed.stdout and "I main ready" in deployed.stdout

    watched = tool("earshot", "monitor", "--port", port, "--reset", "--until", "I main ready", "--timeout", "30")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "I main boot firmware=earshot" in watched.stdout
