"""Peak memory of one forward pass, measured in a fresh process per case, next to analytic sizes.

Records (all at the model's input point):

- ``peak_memory_bytes``: what one forward pass adds at its peak over the memory held once the
  model and its inputs are loaded (steady state: the second forward of the process). CPU:
  peak resident set; CUDA: the caching allocator's ``max_memory_allocated`` (the reserved
  peak in ``details``). Out of memory, a crash or a timeout is this record with ``error``.
- ``weights_bytes``: (parameters + buffers) × element size, counted on the meta device.
- ``score_matrix_bytes`` for attention models: batch × heads × T² × element size, one layer's
  attention scores, which naive attention materialises and fused kernels do not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from archbench.models.build import BuiltModel
from archbench.results.record import Record

# Fixed glibc malloc thresholds in the worker: every block over 128 KiB is mmap'd and given back
# to the system when freed, so a forward's freed tensors do not linger in the resident set (the
# default dynamic threshold would keep them in the heap and hide the second forward's peak).
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def measure_memory(
    spec: str,
    *,
    batch: int = 1,
    seq: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    timeout_s: float | None = None,
) -> list[Record]:
    """Peak forward memory (fresh subprocess), weights bytes and, for attention, the score-matrix bytes.

    A bad spec or an unavailable device raises UserError before any process starts.
    """
    from archbench.errors import UserError
    from archbench.models import build_model, check_device

    check_device(device)
    if device == "meta":
        raise UserError(f"{spec}: memory needs a real device (cpu or cuda); the meta device allocates nothing")
    built = build_model(spec, device="meta", batch=batch, seq=seq, input_shape=input_shape, dtype=dtype)
    request = {"spec": built.spec, "batch": batch, "seq": seq, "input_shape": list(input_shape) if input_shape else None,
               "device": device, "dtype": dtype}
    too_big = check_fits(built, device)
    result = {"error": too_big} if too_big else run_worker(request, timeout_s)
    records = [_peak_record(built, result, device)]
    records.append(Record(built.spec, "weights_bytes", weights_bytes(built.module), "bytes", dict(built.point),
                          details={"formula": "(parameters + buffers) x element size"}))
    scores = score_matrix(built)
    if scores:
        records.append(Record(built.spec, "score_matrix_bytes", scores["bytes"], "bytes", dict(built.point),
                              details=scores))
    return records


def run_worker(request: dict, timeout_s: float | None = None) -> dict:
    """Run :mod:`archbench.measure.memory_worker` on ``request`` in a fresh Python process; its JSON answer.

    Failures come back as ``{"error": ...}``: the worker's own exception, a signal (the kernel's
    out-of-memory killer sends SIGKILL), or the timeout. The worker is killed when this process
    dies, even by SIGKILL (see :func:`archbench.measure.memory_worker.die_with_parent`).
    """
    from archbench.measure.memory_worker import PARENT_PID_ENV

    command = [sys.executable, "-m", "archbench.measure.memory_worker"]
    env = {**os.environ, **WORKER_MALLOC_ENV, PARENT_PID_ENV: str(os.getpid())}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, input=json.dumps(request), capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:g} s (worker killed)"}
    seconds = time.perf_counter() - start
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        hint = " (the kernel's out-of-memory killer?)" if name == "SIGKILL" else ""
        return {"error": f"worker killed by {name}{hint}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exited with status {done.returncode}: {last}"[:300]}
    result = json.loads(lines[-1])
    result["worker_seconds"] = seconds
    return result


def _peak_record(built: BuiltModel, result: dict, device: str) -> Record:
    point = dict(built.point)
    if "error" in result:
        return Record(built.spec, "peak_memory_bytes", None, "bytes", point, error=result["error"],
                      warnings=list(built.warnings))
    steady, first = result["steady"], result["first"]
    details = {
        "method": "cuda max_memory_allocated" if device.startswith("cuda") else "peak RSS (VmHWM) in a fresh process",
        "device": device,
        "dtype": built.dtype,
        "baseline_bytes": steady["baseline_bytes"],
        "peak_bytes": steady["peak_bytes"],
        "first_forward_peak_bytes": first["forward_peak_bytes"],
        "worker_seconds": result["worker_seconds"],
    }
    if "reserved_peak_bytes" in steady:
        details["reserved_peak_bytes"] = steady["reserved_peak_bytes"]
    return Record(built.spec, "peak_memory_bytes", steady["forward_peak_bytes"], "bytes", point,
                  warnings=list(built.warnings), details=details)


def weights_bytes(module) -> int:
    """Bytes of the parameters (each shared tensor once) and buffers, from their element sizes."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def available_memory_bytes(device: str) -> int | None:
    """Memory free for a new allocation: MemAvailable of /proc/meminfo on CPU, free GPU memory on CUDA."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(built_meta: BuiltModel, device: str) -> str | None:
    """Why the model's weights cannot be allocated on ``device`` (an error message), or None when they fit.

    Built on the meta device first, so ``gpt3-175b`` is refused instead of waking the out-of-memory killer.
    """
    needed, available = weights_bytes(built_meta.module), available_memory_bytes(device)
    if available is not None and needed > available:
        return f"weights need {needed:,} bytes but only {available:,} bytes are available on {device}; not built"
    return None


def score_matrix(built: BuiltModel) -> dict | None:
    """One layer's attention scores, batch × heads × T² × element size, or None when not an attention model."""
    if built.entry.family not in ("transformer", "vit"):
        return None
    heads, length = attention_heads(built), attention_length(built)
    if not heads or not length:
        return None
    from archbench.models.build import torch_dtype

    size = torch_dtype(built.dtype).itemsize
    return {"bytes": built.batch * heads * length**2 * size, "batch": built.batch, "heads": heads, "T": length,
            "element_size": size, "formula": "batch x heads x T^2 x element size (one layer)"}


def attention_heads(built: BuiltModel) -> int | None:
    """Heads per attention layer: the ``heads`` option, the Hugging Face config, or the first nn.MultiheadAttention."""
    from torch import nn

    if built.options.get("heads"):
        return built.options["heads"]
    config = getattr(built.module, "config", None)
    for name in ("num_attention_heads", "n_head", "num_heads"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    for sub in built.module.modules():
        if isinstance(sub, nn.MultiheadAttention):
            return sub.num_heads
    return None


def attention_length(built: BuiltModel) -> int | None:
    """Positions attended over: the sequence length, or for a ViT the patches plus the class token."""
    if built.input.seq:
        return built.input.seq
    config = getattr(built.module, "config", None)
    patch = getattr(built.module, "patch_size", None) or getattr(config, "patch_size", None)
    if built.input.kind == "image" and isinstance(patch, int):
        height, width = built.input.shape[-2:]
        return (height // patch) * (width // patch) + 1
    return None
