"""The machine's measured limits, each timed once per process: compute (FLOP/s of a large square matmul) and
memory bandwidth (bytes/s of a STREAM-like triad)."""

from __future__ import annotations

import functools

# Square matmul sizes: large enough to reach the BLAS library's steady throughput, small enough
# to time in about a second (a 2048² float32 matmul is 17.2 GFLOP; a 8192² one 1.1 TFLOP).
_SIZE = {"cpu": 2048, "cuda": 8192}


def matmul_size(device: str) -> int:
    """The side n of the n×n @ n×n matmul timed on ``device``."""
    return _SIZE[device.split(":")[0]]


@functools.lru_cache(maxsize=None)
def measure_peak_flops(device: str = "cpu", dtype: str = "float32", threads: int | None = None) -> float:
    """FLOP/s (2·n³ per n×n matmul, fastest torch.utils.benchmark sample) at ``dtype`` on ``device``.

    Measured once per (device, dtype, threads) per process. ``threads`` defaults to torch's
    current thread count; a model's achieved FLOP/s divided by this is its ``peak_fraction``.
    The fastest sample, not the median: a peak is the best the machine does, and other load
    can only slow a sample down.
    """
    import torch

    from archbench.measure.latency import benchmark_timer
    from archbench.models import check_device
    from archbench.models.build import torch_dtype

    check_device(device)
    threads = threads or torch.get_num_threads()
    n = matmul_size(device)
    a = torch.randn(n, n, device=device, dtype=torch_dtype(dtype))
    b = torch.randn(n, n, device=device, dtype=torch_dtype(dtype))
    timer = benchmark_timer()("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
    with torch.inference_mode():
        measurement = timer.blocked_autorange(min_run_time=1.0)
    return 2 * n**3 / min(measurement.times)


# Triad operands: 2**24 float32 elements (64 MiB) each, far beyond any CPU cache, three per call.
_TRIAD_ELEMENTS = {"cpu": 1 << 24, "cuda": 1 << 28}


@functools.lru_cache(maxsize=None)
def measure_bandwidth(device: str = "cpu", threads: int | None = None) -> float:
    """Memory bandwidth in bytes/s: a STREAM-like triad ``a = b + s·c`` on float32 tensors far larger than the
    caches (one fused kernel, ``torch.add(b, c, alpha=s, out=a)``: two tensors read, one written, 12 bytes per
    element), fastest torch.utils.benchmark sample; measured once per (device, threads) per process."""
    import torch

    from archbench.measure.latency import benchmark_timer
    from archbench.models import check_device

    check_device(device)
    threads = threads or torch.get_num_threads()
    n = _TRIAD_ELEMENTS[device.split(":")[0]]
    a, b, c = (torch.rand(n, device=device) for _ in range(3))
    timer = benchmark_timer()("torch.add(b, c, alpha=3.0, out=a)", globals={"torch": torch, "a": a, "b": b, "c": c},
                              num_threads=threads)
    with torch.inference_mode():
        measurement = timer.blocked_autorange(min_run_time=1.0)
    return 3 * n * a.element_size() / min(measurement.times)
