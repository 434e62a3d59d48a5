"""Child process of :mod:`archbench.measure.memory`: build one model, run its forward, report the forward's peak
(a train-phase request: two optimizer steps, :func:`archbench.measure.training.measure_step_peak`).

Run as ``python -m archbench.measure.memory_worker`` with a JSON request on stdin
(``spec, batch, seq, input_shape, device, dtype``); prints one JSON line on stdout:
``{"first": {...}, "steady": {...}}`` (one dict per forward pass) or ``{"error": "..."}``.

The forward is run twice: the first call also pays one-time allocations (kernel caches,
thread pools), the second is the steady-state figure. On CPU the peak is the process's
peak resident set (VmHWM), reset before each forward by writing 5 to
``/proc/self/clear_refs``, minus the resident set just before it. On CUDA it is the
allocator's ``max_memory_allocated`` minus what was allocated before the forward.

The worker dies with its parent: at start-up it asks Linux for SIGKILL when the parent exits
(``PR_SET_PDEATHSIG``), then exits at once if its parent is no longer the process named in
``ARCHBENCH_PARENT_PID`` (the parent died before the request took effect).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from archbench.errors import describe_error

PARENT_PID_ENV = "ARCHBENCH_PARENT_PID"
"""The parent's process id, set by :func:`archbench.measure.memory.run_worker`."""
_PR_SET_PDEATHSIG = 1
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    """Set this process's peak resident set (VmHWM) back to its current resident set (Linux)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError as exc:
        raise RuntimeError(f"cannot reset the peak resident set through {_CLEAR_REFS} ({exc})") from None


def cpu_forward_peak(forward: Callable[[], object]) -> dict[str, int]:
    """Bytes of resident memory the call ``forward()`` adds at its peak, over the resident set before it."""
    gc.collect()
    reset_peak_rss()
    baseline = status_bytes("VmRSS")
    forward()
    peak = status_bytes("VmHWM")
    return {"baseline_bytes": baseline, "peak_bytes": peak, "forward_peak_bytes": max(peak - baseline, 0)}


def cuda_forward_peak(forward: Callable[[], object], device: str) -> dict[str, int]:
    """Bytes the CUDA caching allocator hands out at the peak of ``forward()``, over what was allocated before."""
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    forward()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "forward_peak_bytes": peak - baseline,
        "reserved_peak_bytes": torch.cuda.max_memory_reserved(device),
    }


def measure(request: dict) -> dict:
    """Build the requested model with its inputs, then measure two forward passes."""
    import torch

    from archbench.models.subject import Recipe

    if request.get("phase") == "train":
        from archbench.measure.training import measure_step_peak

        return measure_step_peak(request)
    built = Recipe.from_dict(request).build(request["device"])
    args, kwargs = built.example_inputs()

    def forward() -> None:
        with torch.inference_mode():
            built.module(*args, **kwargs)  # the output is freed on return, after the peak

    if request["device"].startswith("cuda"):
        peak = lambda: cuda_forward_peak(forward, request["device"])  # noqa: E731
    else:
        peak = lambda: cpu_forward_peak(forward)  # noqa: E731
    first = peak()
    return {"first": first, "steady": peak()}


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies; exit now if ``parent_pid`` is already gone.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the request above: nobody waits for the answer
        os._exit(1)


def main() -> None:
    if os.environ.get(PARENT_PID_ENV):
        die_with_parent(int(os.environ[PARENT_PID_ENV]))
    request = json.loads(sys.stdin.read())
    try:
        result = measure(request)
    except Exception as exc:  # out of memory, a forward that fails: reported by the parent as a record's error
        result = {"error": describe_error(exc)}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
