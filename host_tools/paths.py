# Where the repository's firmware and board maps live (the package is installed editable).
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"
DATA = REPO / "tests" / "data"
