"""Keep the session offline like advbench's own tests."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
