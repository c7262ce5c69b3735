import sys
from pathlib import Path

# Test helper modules (e.g. tests/unit/planfakes.py) import by their plain name.
sys.path.insert(0, str(Path(__file__).parent / "unit"))
