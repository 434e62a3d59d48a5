"""A test-only model, loaded as ``tests/killer_model.py:build``, whose factory SIGKILLs its own process.

It kills only when ARCHBENCH_TEST_KILL names a file, after appending its PID there, so a test
can count how many workers tried to build it.
"""

import os
import signal


def build(width: int = 4):
    """A Linear(width, width) on a (1, width) input; death first when ARCHBENCH_TEST_KILL is set."""
    import torch
    from torch import nn

    marker = os.environ.get("ARCHBENCH_TEST_KILL")
    if marker:
        with open(marker, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return nn.Linear(width, width), torch.zeros(1, width)
