"""Make the plugin importable without installing it, and keep the session offline like advbench's own tests."""

import os
import sys
from pathlib import Path

os.environ["ADVBENCH_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
