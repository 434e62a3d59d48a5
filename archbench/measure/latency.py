"""Latency of one forward pass (or optimizer step), timed with torch.utils.benchmark, and what it achieves.

Records (all at the model's input point):

- ``latency_s``: median seconds per forward; ``details`` keep the raw per-call samples
  (``samples``), ``iqr_s``, ``mean_s``, the number of samples, calls
  per sample and threads. A warning when the IQR exceeds 10% of the median.
- ``throughput_items_s``: batch / median.
- ``achieved_flops_s`` (2·MACs / median) and ``peak_fraction`` (of the measured matmul
  peak), when MACs and the peak are given.
- ``compile_time_s`` with ``compile=True``: the first call of the torch.compile'd module
  (compilation included); the latency after it is steady-state.

:func:`deadline` bounds the whole latency measurement (see :mod:`archbench.measure.run`): a
forward that hangs or sleeps is a ``latency_s`` record with its error. The limit is a SIGALRM
sent to the main thread (the CLI, a suite, a Ray task), so it acts between Python bytecodes:
a single C call that never returns is not interrupted.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from archbench.errors import describe_error
from archbench.models.subject import Subject
from archbench.results.record import Record

NOISY_IQR_FRACTION = 0.10
DEFAULT_TIMEOUT_S = 600.0
"""Seconds allowed to measure one model's latency (MACs, warm-up, timed calls) unless told otherwise: generous."""


def measure_latency(
    model,
    inputs=None,
    *,
    threads: int | None = None,
    min_time: float = 1.0,
    compile: bool = False,
    macs: int | None = None,
    peak_flops: float | None = None,
) -> list[Record]:
    """Time the forward pass in inference mode; a failure becomes a ``latency_s`` record with ``error``.

    ``model`` is a subject, or an ``nn.Module`` with its example ``inputs`` (a tensor, a tuple
    or a dict). ``macs`` and ``peak_flops`` add the achieved FLOP/s and its fraction of the peak.
    """
    import torch

    from archbench.errors import UserError

    built = model if isinstance(model, Subject) else Subject.from_module(model, inputs)
    if built.device == "meta":
        raise UserError(f"{built.label}: latency needs a real device (cpu or cuda); the meta device computes nothing")
    threads = threads or torch.get_num_threads()
    point = dict(built.point)
    records: list[Record] = []
    module = built.module
    args, kwargs = built.example_inputs()
    if compile:
        module, compile_record = _compile(built, args, kwargs)
        records.append(compile_record)
        if compile_record.error:
            records.append(Record.of(built.label, "latency_s", None, point, error=compile_record.error))
            return records
    try:
        if built.phase == "train":  # whole optimizer steps (archbench.measure.training.make_step)
            measurement = _time_step(built, threads, min_time)
        else:
            measurement = _time_forward(module, args, kwargs, threads, min_time)
    except TimingTimeout:
        raise
    except Exception as exc:  # the forward itself failed (shape, out of memory...): a row, not a crash
        records.append(Record.of(built.label, "latency_s", None, point, error=describe_error(exc)))
        return records

    median = measurement.median
    iqr = measurement.iqr
    warnings = list(built.warnings)
    if iqr > NOISY_IQR_FRACTION * median:
        warnings.append(
            f"noisy timing: IQR {iqr / median:.0%} of the median over {len(measurement.times)} samples "
            f"(other load on the machine?)"
        )
    details = {
        "samples": list(measurement.times),
        "n_samples": len(measurement.times),
        "calls_per_sample": measurement.number_per_run,
        "iqr_s": iqr,
        "mean_s": measurement.mean,
        "threads": threads,
        "device": built.device,
        "dtype": built.dtype,
        "min_time_s": min_time,
        "compiled": compile,
        "timer": "torch.utils.benchmark.Timer.blocked_autorange, "
                 + ("one optimizer step per call" if built.phase == "train" else "torch.inference_mode"),
    }
    records.append(Record.of(built.label, "latency_s", median, point, warnings=warnings, details=details))
    records.append(Record.of(built.label, "throughput_items_s", built.batch / median, point))
    if macs is not None:
        achieved = 2 * macs / median
        records.append(Record.of(built.label, "achieved_flops_s", achieved, point,
                              details={"macs": macs, "flops": 2 * macs, "formula": "2 * macs / latency_s"}))
        if peak_flops:
            fraction = achieved / peak_flops
            above = [f"{fraction:.2f}x the measured matmul peak: the peak was measured under other load, or "
                     f"this model's kernels outrun torch.mm at {built.dtype}"] if fraction > 1 else []
            records.append(Record.of(built.label, "peak_fraction", fraction, point, warnings=above,
                                  details={"peak_flops_s": peak_flops}))
    return records


def benchmark_timer():
    """``torch.utils.benchmark.Timer``, imported without the misleading "No CUDA runtime is found" log line.

    (torch.utils.benchmark imports torch.utils.cpp_extension, which logs it on CPU-only machines
    that have a CUDA_HOME; it concerns compiling extensions, not timing.)
    """
    import logging

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    return Timer


def _time_forward(module, args: tuple, kwargs: dict, threads: int, min_time: float):
    """A torch.utils.benchmark Measurement of ``module(*args, **kwargs)`` (warm-up included by the Timer)."""
    import torch

    timer = benchmark_timer()(
        "module(*args, **kwargs)",
        globals={"module": module, "args": args, "kwargs": kwargs},
        num_threads=threads,
    )
    with torch.inference_mode():
        return timer.blocked_autorange(min_run_time=min_time)


def _time_step(built: Subject, threads: int, min_time: float):
    """A torch.utils.benchmark Measurement of one optimizer step of a train-phase subject per call."""
    from archbench.measure.training import make_step

    timer = benchmark_timer()("step()", globals={"step": make_step(built)}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_time)


class TimingTimeout(Exception):
    """Timing one model took longer than its limit."""


@contextmanager
def deadline(seconds: float):
    """Raise :class:`TimingTimeout` in the block once ``seconds`` have passed, and again each second until it ends.

    A watchdog thread sends SIGALRM to the main thread, so the build's own time limit (an
    interval timer) cannot cancel this one, and code that swallows the exception meets it
    again. Outside the main thread there is no limit.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_kill"):
        yield
        return
    main = threading.get_ident()
    expired, done = threading.Event(), threading.Event()

    def expire(signum, frame):
        if expired.is_set():
            raise TimingTimeout(f"timed out after {seconds:g} s (the limit of --timeout-s / timeout_s)")

    def watch():
        if done.wait(seconds):
            return
        expired.set()
        while not done.is_set():
            signal.pthread_kill(main, signal.SIGALRM)
            done.wait(1.0)

    previous = signal.signal(signal.SIGALRM, expire)
    watcher = threading.Thread(target=watch, name="archbench-latency-deadline", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGALRM, previous)


def _compile(built: Subject, args: tuple, kwargs: dict):
    """The torch.compile'd module and a ``compile_time_s`` record (first call, compilation included)."""
    import torch

    point = dict(built.point)
    try:
        compiled = torch.compile(built.module)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(*args, **kwargs)
            if built.device.startswith("cuda"):
                torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    except Exception as exc:  # compiler missing, unsupported op, backend failure
        return built.module, Record.of(built.label, "compile_time_s", None, point,
                                    error=f"torch.compile failed: {describe_error(exc)}")
    return compiled, Record.of(built.label, "compile_time_s", seconds, point,
                            details={"what": "first call of the torch.compile'd module, compilation included "
                                             "(inductor's on-disk cache makes repeat runs shorter)"})
