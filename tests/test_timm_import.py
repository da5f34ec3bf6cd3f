"""After the README's install, `import timm` and `import torchvision` work in any program (issue 12), not only
through advbench's helpers: the wheel's start-up hook (compat/_advbench_torchvision.py) is active."""

from __future__ import annotations

import os
import subprocess
import sys


def test_plain_python_imports_timm_and_torchvision():
    code = ("import sys, timm, torchvision, torchvision.transforms; "
            "net = timm.create_model('test_resnet', num_classes=10, in_chans=1); "
            "assert '_advbench_torchvision' in sys.modules; print(type(net).__name__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user's own script runs
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ResNet"


def test_the_hook_does_not_import_torch_at_start_up():
    code = "import sys; print('torch' in sys.modules, '_advbench_torchvision' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert done.stdout.split() == ["False", "True"], done.stderr
