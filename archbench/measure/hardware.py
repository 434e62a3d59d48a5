"""The table of machines a roofline is drawn against: dense peak FLOP/s per dtype and memory bandwidth.

Every figure is the vendor's own, from the datasheet named beside it, and DENSE: vendors print the
"with sparsity" figure (2:4 structured sparsity, twice the dense one) first; it is never used here.
``this-cpu`` is measured on the spot (:mod:`archbench.measure.peak`): the float32 matmul peak and a
STREAM-like triad's bandwidth. A YAML file of the user's own machines extends the table::

    machines:
      my-gpu: {bandwidth_gbs: 936, peak_tflops: {float32: 35.6, bfloat16: 142}, source: "my datasheet"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from archbench.errors import UserError

DTYPES = ("float32", "tfloat32", "bfloat16", "float16", "float8", "int8")
"""The dtypes a machine's peaks are given for (tfloat32: float32 matmuls on tensor cores; int8 in OP/s)."""

T, G = 1e12, 1e9


@dataclass(frozen=True)
class Machine:
    """One machine: its dense peak FLOP/s per dtype, its memory bandwidth (bytes/s), and where they come from."""

    name: str
    bandwidth: float  # bytes/s
    peaks: dict[str, float] = field(default_factory=dict)  # dtype -> dense FLOP/s (int8: OP/s)
    source: str = ""

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s at ``dtype``; UserError when the machine has none listed for it."""
        if dtype not in self.peaks:
            raise UserError(f"{self.name} lists no {dtype} peak; it has {', '.join(self.peaks)}")
        return self.peaks[dtype]

    def ridge(self, dtype: str) -> float:
        """The ridge point, FLOP per byte: an op of lower arithmetic intensity is memory-bound here."""
        return self.peak(dtype) / self.bandwidth


def _tf(**peaks: float) -> dict[str, float]:
    return {dtype: value * T for dtype, value in peaks.items()}


# NVIDIA figures: the datasheets mark sparse figures with "*" ("with sparsity"); dense = half of them.
MACHINES: dict[str, Machine] = {m.name: m for m in (
    # NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column): FP32 67 TF; TF32 989*, BF16/FP16 1,979*,
    # FP8 3,958*, INT8 3,958* TOPS (* with sparsity); GPU memory bandwidth 3.35 TB/s.
    Machine("h100-sxm", 3350 * G,
            _tf(float32=67, tfloat32=494.5, bfloat16=989.5, float16=989.5, float8=1979, int8=1979),
            "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM"),
    # Same datasheet, H100 PCIe column: FP32 51 TF; TF32 756*, BF16/FP16 1,513*, FP8 3,026*, INT8 3,026*; 2 TB/s.
    Machine("h100-pcie", 2000 * G, _tf(float32=51, tfloat32=378, bfloat16=756.5, float16=756.5, float8=1513,
                                       int8=1513), "NVIDIA H100 Tensor Core GPU datasheet, H100 PCIe"),
    # NVIDIA H200 Tensor Core GPU datasheet (H200 SXM): FP32 67 TF; TF32 989*, BF16/FP16 1,979*, FP8 3,958*,
    # INT8 3,958*; 4.8 TB/s.
    Machine("h200", 4800 * G, _tf(float32=67, tfloat32=494.5, bfloat16=989.5, float16=989.5, float8=1979, int8=1979),
            "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM"),
    # NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TF; TF32 156 (312*), BF16/FP16 312 (624*), INT8 624 (1,248*)
    # TOPS; no FP8. Bandwidth: A100 40GB 1,555 GB/s; A100 80GB SXM 2,039 GB/s.
    Machine("a100-40gb", 1555 * G, _tf(float32=19.5, tfloat32=156, bfloat16=312, float16=312, int8=624),
            "NVIDIA A100 Tensor Core GPU datasheet, A100 40GB"),
    Machine("a100-80gb", 2039 * G, _tf(float32=19.5, tfloat32=156, bfloat16=312, float16=312, int8=624),
            "NVIDIA A100 Tensor Core GPU datasheet, A100 80GB SXM"),
    # NVIDIA L4 Tensor Core GPU datasheet: FP32 30.3 TF; TF32 120*, BF16/FP16 242*, FP8 485*, INT8 485* TOPS; 300 GB/s.
    Machine("l4", 300 * G, _tf(float32=30.3, tfloat32=60, bfloat16=121, float16=121, float8=242.5, int8=242.5),
            "NVIDIA L4 Tensor Core GPU datasheet"),
    # NVIDIA L40S datasheet: FP32 91.6 TF; TF32 183 | 366*, BF16/FP16 362.05 | 733*, FP8 733 | 1,466*,
    # INT8 733 | 1,466* TOPS; 864 GB/s.
    Machine("l40s", 864 * G, _tf(float32=91.6, tfloat32=183, bfloat16=362.05, float16=362.05, float8=733, int8=733),
            "NVIDIA L40S GPU datasheet"),
    # NVIDIA Ada GPU Architecture whitepaper, GeForce RTX 4090 column (FP32 accumulate, as PyTorch runs matmuls):
    # FP32 82.6 TF; TF32 82.6 (165.2 sparse); BF16/FP16 165.2 (330.4 sparse); FP8 330.3 (660.6 sparse);
    # INT8 660.6 (1,321.2 sparse) TOPS; 1,008 GB/s GDDR6X.
    Machine("rtx-4090", 1008 * G, _tf(float32=82.6, tfloat32=82.6, bfloat16=165.2, float16=165.2, float8=330.3,
                                      int8=660.6), "NVIDIA Ada GPU Architecture whitepaper, GeForce RTX 4090"),
    # AMD Instinct MI300X data sheet: FP32 (matrix) 163.4 TF; TF32 653.7, FP16/BF16 1,307.4, FP8 2,614.9,
    # INT8 2,614.9 TOPS (sparse figures double these); 5.3 TB/s HBM3.
    Machine("mi300x", 5300 * G, _tf(float32=163.4, tfloat32=653.7, bfloat16=1307.4, float16=1307.4, float8=2614.9,
                                    int8=2614.9), "AMD Instinct MI300X data sheet"),
    # Google Cloud TPU v5e documentation (system architecture): 197 TFLOPs bf16, 393 TOPs int8 per chip;
    # HBM2 16 GB at 819 GBps. No other dtype is listed.
    Machine("tpu-v5e", 819 * G, _tf(bfloat16=197, int8=393), "Google Cloud TPU v5e documentation"),
)}
"""The listed machines, by name."""

THIS_CPU = "this-cpu"


def this_cpu(threads: int | None = None, dtype: str = "float32") -> Machine:
    """This machine's CPU, measured now: the matmul peak at ``dtype`` and the triad bandwidth (about 2 s)."""
    from archbench.measure.peak import measure_bandwidth, measure_peak_flops

    return Machine(THIS_CPU, measure_bandwidth("cpu", threads), {dtype: measure_peak_flops("cpu", dtype, threads)},
                   f"measured here: {dtype} matmul peak, STREAM-like triad bandwidth")


def load_machines(path: str | Path) -> dict[str, Machine]:
    """The machines of a user's YAML file (``machines: {name: {bandwidth_gbs, peak_tflops: {dtype: TF}, source}}``)."""
    from archbench.yamlfile import read_text, safe_load

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such machines file")
    data = safe_load(path, read_text(path))
    machines = data.get("machines") if isinstance(data, dict) else None
    if not isinstance(machines, dict) or not machines:
        raise UserError(f"{path}: expected a mapping 'machines:' of name -> {{bandwidth_gbs, peak_tflops}}")
    loaded = {}
    for name, entry in machines.items():
        where = f"{path}: machine {name!r}"
        if not isinstance(entry, dict) or set(entry) - {"bandwidth_gbs", "peak_tflops", "source"}:
            raise UserError(f"{where}: expected keys bandwidth_gbs, peak_tflops and optionally source")
        bandwidth, peaks = entry.get("bandwidth_gbs"), entry.get("peak_tflops")
        if not _positive(bandwidth):
            raise UserError(f"{where}: bandwidth_gbs must be a positive number, got {bandwidth!r}")
        if not isinstance(peaks, dict) or not peaks:
            raise UserError(f"{where}: peak_tflops must map dtypes ({', '.join(DTYPES)}) to TFLOP/s")
        for dtype, value in peaks.items():
            if dtype not in DTYPES or not _positive(value):
                raise UserError(f"{where}: peak_tflops {dtype!r}: expected one of {', '.join(DTYPES)} "
                                f"with a positive number, got {value!r}")
        loaded[str(name)] = Machine(str(name), float(bandwidth) * G, _tf(**peaks), str(entry.get("source", path)))
    return loaded


def _positive(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def machines(names: str = "all", extra: str | Path | None = None, threads: int | None = None,
             dtype: str = "float32") -> list[Machine]:
    """The machines called ``names`` (one name, a comma-separated list, or ``all``: every listed one, then
    this-cpu), from the table plus the ``extra`` YAML file; this-cpu is measured only when asked for."""
    table = {**MACHINES, **(load_machines(extra) if extra else {})}
    wanted = [*table, THIS_CPU] if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    known = [*table, THIS_CPU]
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise UserError(f"unknown hardware {', '.join(unknown) or repr(names)}; "
                        f"expected all or one of {', '.join(known)}")
    return [this_cpu(threads, dtype) if n == THIS_CPU else table[n] for n in wanted]
