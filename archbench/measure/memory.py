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

from archbench.errors import UserError
from archbench.models.build import check_fits
from archbench.models.footprint import weights_bytes
from archbench.models.subject import Recipe, Subject
from archbench.results.record import Record

# Fixed glibc malloc thresholds in the worker: every block over 128 KiB is mmap'd and given back
# to the system when freed, so a forward's freed tensors do not linger in the resident set (the
# default dynamic threshold would keep them in the heap and hide the second forward's peak).
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def measure_memory(
    model,
    *,
    batch: int | None = None,
    seq: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    timeout_s: float | None = None,
    meta: Subject | None = None,
) -> list[Record]:
    """Peak forward memory (fresh subprocess), weights bytes and, for attention, score-matrix and KV-cache bytes.

    ``model`` is anything that can be rebuilt in another process: a model argument
    (``"resnet50"``, ``"my_net.py:build"``, ``"hf:llama"``), a :class:`Recipe`, a subject built
    from one, or an importable factory or module class. Batch, seq, input shape and dtype
    apply to a model argument or factory; ``meta`` is the model already built on the meta device.
    A bad model or an unavailable device raises UserError before any process starts; weights
    that cannot fit are a record with the error.
    """
    from archbench.errors import UserError
    from archbench.models import check_device

    check_device(device)
    if device == "meta":
        raise UserError(f"{model}: memory needs a real device (cpu or cuda); the meta device allocates nothing")
    recipe = rebuildable(model, Recipe("", batch, seq, tuple(input_shape) if input_shape else None, dtype))
    meta = meta or recipe.build("meta")
    try:
        check_fits(meta, device)
    except UserError as too_big:
        result = {"error": str(too_big)}
    else:
        result = run_worker({**recipe.to_dict(), "device": device}, timeout_s)
    point = dict(meta.point)
    records = [_peak_record(meta, result, device)]
    records.append(Record.of(meta.label, "weights_bytes", weights_bytes(meta.module), point,
                          details={"formula": "(parameters + buffers) x element size"}))
    scores = score_matrix(meta)
    if scores:
        records.append(Record.of(meta.label, "score_matrix_bytes", scores["bytes"], point, details=scores))
    cache = kv_cache(meta) if meta.phase == "decode" else None
    if cache is not None:
        records.append(Record.of(meta.label, "kv_cache_bytes", cache, point,
                              details={"formula": "2 x layers x kv_heads x head_dim x T x element size x batch "
                                                  "(a sliding-window layer holds min(T, W - 1) tokens)"}))
    return records


def kv_cache(subject: Subject) -> int | None:
    """Bytes of the keys and values the subject's decoder caches for its ``seq`` tokens (None: no KV cache)."""
    from archbench.measure.architecture import kv_cache_bytes
    from archbench.models.subject import dtype_bytes

    model = getattr(subject.module, "model", subject.module)
    config = getattr(model, "config", None)
    if config is None or not subject.seq:
        return None
    return kv_cache_bytes(config, subject.seq, subject.batch, dtype_bytes(subject.dtype))


def rebuildable(model, defaults: Recipe) -> Recipe:
    """The recipe that rebuilds ``model`` in a fresh process (UserError for a live module without one)."""
    import inspect
    import sys

    if isinstance(model, Recipe):
        return model
    if isinstance(model, Subject):
        if model.recipe is None:
            raise UserError(f"{model.label}: memory is measured in a fresh process, which cannot rebuild a module "
                            "handed over in memory; pass a model argument or an importable factory")
        return model.recipe
    if isinstance(model, str):
        return defaults.with_(spec=model)
    if callable(model) and hasattr(model, "__qualname__") and "<" not in model.__qualname__:
        module = sys.modules.get(model.__module__)
        path = getattr(module, "__file__", None)
        if model.__module__ == "__main__" or model.__module__.startswith("archbench_user_"):
            if not path:
                raise UserError(f"{model.__qualname__}: defined interactively; put it in a file to measure its memory")
            return defaults.with_(spec=f"{path}:{model.__qualname__}")
        return defaults.with_(spec=f"{model.__module__}:{model.__qualname__}")
    kind = "a module instance" if not inspect.isclass(model) and hasattr(model, "forward") else type(model).__name__
    raise UserError(f"memory is measured in a fresh process, which cannot rebuild {kind}; pass a model argument "
                    "(e.g. 'my_net.py:build') or an importable factory")


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


def _peak_record(built: Subject, result: dict, device: str) -> Record:
    point = dict(built.point)
    if "error" in result:
        return Record.of(built.label, "peak_memory_bytes", None, point, error=result["error"],
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
    return Record.of(built.label, "peak_memory_bytes", steady["forward_peak_bytes"], point,
                  warnings=list(built.warnings), details=details)


def largest_activation_bytes(meta: Subject) -> int:
    """Bytes of the largest tensor one forward of ``meta`` (built on the meta device) makes; 0 when not known.

    Run on the meta device, so nothing is allocated. Recurrent models are skipped (on meta
    their kernels run step by step, which takes minutes at long sequences), and so are models
    whose forward cannot run on meta.
    """
    import torch
    from torch import nn
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    if any(isinstance(m, nn.RNNBase) for m in meta.module.modules()):
        return 0
    largest = 0

    class Largest(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            nonlocal largest
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    largest = max(largest, t.numel() * t.element_size())
            return out

    args, kwargs = meta.example_inputs("meta")
    try:
        with Largest(), torch.no_grad():
            meta.module(*args, **kwargs)
    except Exception:  # a model whose forward needs real data (routing, nonzero): the inputs check stands alone
        return 0
    return largest


def score_matrix(built: Subject) -> dict | None:
    """One layer's attention scores, batch × heads × T² × element size, or None when not an attention model."""
    if built.family not in ("transformer", "vit"):
        return None
    heads, length = attention_heads(built), attention_length(built)
    if not heads or not length:
        return None
    from archbench.models.subject import torch_dtype

    size = torch_dtype(built.dtype).itemsize
    return {"bytes": built.batch * heads * length**2 * size, "batch": built.batch, "heads": heads, "T": length,
            "element_size": size, "formula": "batch x heads x T^2 x element size (one layer)"}


def attention_heads(built: Subject) -> int | None:
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


def attention_length(built: Subject) -> int | None:
    """Positions attended over: the sequence length, or for a ViT the patches plus the class token."""
    if built.input is None:
        return None
    if built.input.seq:
        return built.input.seq
    config = getattr(built.module, "config", None)
    patch = getattr(built.module, "patch_size", None) or getattr(config, "patch_size", None)
    if built.input.kind == "image" and isinstance(patch, int):
        height, width = built.input.shape[-2:]
        return (height // patch) * (width // patch) + 1
    return None
