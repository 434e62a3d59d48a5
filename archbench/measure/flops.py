"""MAC/FLOP counting: two engines, thin adapters over one op table (:mod:`archbench.measure.ops`).

- ``fvcore``: jit tracing through fvcore's public handle API (``FlopCountAnalysis.set_op_handle``),
  one handle per table entry; needs positional tensor inputs on a real device.
- ``dispatch``: a ledger mode that files every op actually run through the table, under
  ``torch.utils.flop_counter.FlopCounterMode``, which keeps the per-module MACs; it works on the
  meta device, with keyword inputs (Hugging Face models) and for backward.

``macs`` is multiply-accumulate work (linear, conv, matmul, einsum, attention, recurrent
weights); ``flops`` = 2 × ``macs``. Bias additions, normalisation, softmax, activations,
pooling, losses and other elementwise work go to ``other_flops``, best effort (see the table).
An op neither in the table nor pure data movement is *uncounted*: reported with its call count
and the modules that ran it (under ``backward``, the module whose forward made it), never
silently zero. The table's negligible ops are the uncounted ones ``--strict`` tolerates.

Forward counts run under ``torch.no_grad()`` (inference), so PyTorch's fused fast paths
(``_transformer_encoder_layer_fwd``, ``_native_multi_head_attention``) are taken where it
would take them, and counted by their formulas.

Attention is counted in full (every L×S query–key pair, as the math backend computes it) unless
``attention_count="causal"``: then each ``scaled_dot_product_attention`` call counts the pairs
its mask keeps (:func:`sdpa_kept_pairs`) and the record says how each call was counted.
Mixture-of-experts layers count the experts each token was routed to; on the meta device,
where routing cannot be read, each token is taken to reach its top-k experts.
"""

from __future__ import annotations

import math
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from archbench.errors import UserError
from archbench.measure import formulas, ops
from archbench.measure.closed_form import closed_form_check, disagreement
from archbench.measure.params import module_depth
from archbench.models.structure import META_ROUTING, is_attention_module, meta_routing
from archbench.results.record import Record

if TYPE_CHECKING:
    from archbench.models.subject import Subject

ENGINES = ("auto", "fvcore", "dispatch")

ATTENTION_COUNTS = ("full", "causal")
ATTENTION_NOTES = {
    "full": "causal or masked attention is counted as the full L×S score matrix, as the math backend computes it",
    "causal": "scaled_dot_product_attention counts only the query–key pairs its mask keeps",
}
ATTENTION_PRODUCTS = "attention_products"  # fvcore handles: MACs of attention's score and value products


@dataclass(frozen=True)
class OpCall:
    """One op call the dispatch engine ran: its op, the innermost module running it ("" the model itself; under
    backward the module whose forward made it), and its work."""

    op: str  # aten.<name>
    module: str
    macs: int
    other_flops: int
    bytes_moved: int

    @property
    def flops(self) -> int:
        """All its FLOPs: 2 × MACs + other FLOPs (the arithmetic intensity's numerator)."""
        return 2 * self.macs + self.other_flops


@dataclass
class FlopCount:
    """What one count found: MACs (and FLOPs = 2 × MACs), other FLOPs, their breakdowns, uncounted ops."""

    macs: int
    other_flops: int
    by_operator: dict[str, int]  # op -> MACs
    by_module: dict[str, int]  # module name ("" is the whole model) -> MACs
    uncounted: dict[str, int]  # op -> calls
    warnings: list[str] = field(default_factory=list)
    engine: str = ""
    uncounted_modules: dict[str, list[str]] = field(default_factory=dict)  # op -> modules that ran it
    other_by_operator: dict[str, int] = field(default_factory=dict)  # op -> FLOPs
    attention_macs: int = 0  # MACs of attention's score and value products (QKᵀ and AV), see is_attention_module
    other_by_module: dict[str, int] = field(default_factory=dict)  # module name -> other FLOPs (dispatch engine)
    details: dict[str, Any] = field(default_factory=dict)  # how attention and routing were counted
    calls: list[OpCall] = field(default_factory=list)  # every op call, in order (the dispatch engine's)

    @property
    def bytes_moved(self) -> int:
        """Bytes every op call reads and writes (:func:`archbench.measure.ops.moved_bytes`)."""
        return sum(c.bytes_moved for c in self.calls)

    @property
    def flops(self) -> int:
        """FLOPs of the multiply-accumulate work: 2 × MACs."""
        return 2 * self.macs

    @property
    def significant_uncounted(self) -> dict[str, int]:
        """Uncounted ops that are not on the documented list of negligible ones."""
        return {op: n for op, n in self.uncounted.items() if ops.base_name(op) not in ops.NEGLIGIBLE_OPS}


def check_count_options(engine: str = "auto", attention_count: str = "full", by: str | None = None,
                        depth: int | None = None) -> str | None:
    """UserError (one line) for an unknown engine, attention count or breakdown, or a depth below 1 or with
    ``by="operator"``; returns the breakdown (a depth alone means per module). The one check of these options,
    for the commands, the suites and the API alike."""
    if engine not in ENGINES:
        raise UserError(f"unknown --engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if attention_count not in ATTENTION_COUNTS:
        raise UserError(f"unknown --attention-count {attention_count!r}; expected one of {', '.join(ATTENTION_COUNTS)}")
    if by not in (None, "module", "operator"):
        raise UserError(f"unknown --by {by!r}; expected module or operator")
    if depth is not None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise UserError(f"--depth must be a positive integer, got {depth}")
        if by == "operator":
            raise UserError("--depth applies to --by module, not --by operator")
        return "module"
    return by


def choose_engine(built: Subject, engine: str = "auto", backward: bool = False,
                  attention_count: str = "full") -> str:
    """The engine that will count ``built``: fvcore where jit tracing can, dispatch elsewhere."""
    check_count_options(engine, attention_count)
    from archbench.models.decode import DecodeStep

    _, kwargs = built.example_inputs(device="meta")
    why_not_fvcore = (
        "--backward needs the dispatch engine" if backward
        else "a Hugging Face decode step passes its cache object, which jit tracing cannot"
        if isinstance(built.module, DecodeStep)
        else "--attention-count causal reads each attention call's mask, which needs the dispatch engine"
        if attention_count == "causal"
        else "the meta device cannot be traced by jit" if built.device == "meta"
        else f"{built.label} takes keyword inputs, which jit tracing cannot pass" if kwargs
        else None
    )
    if engine == "auto":
        return "dispatch" if why_not_fvcore else "fvcore"
    if engine == "fvcore" and why_not_fvcore:
        raise UserError(f"--engine fvcore cannot count {built.label}: {why_not_fvcore}; use --engine dispatch")
    return engine


def count_flops(model, inputs=None, *, backward: bool = False, engine: str = "auto",
                attention_count: str = "full") -> FlopCount:
    """Count the MACs of one forward pass on the example inputs (forward + backward with ``backward``).

    ``model`` is a subject, or an ``nn.Module`` with its example ``inputs`` (a tensor, a tuple of
    positional inputs or a dict of keyword inputs), as ``archbench.count_flops(model, inputs)``.
    ``attention_count="causal"`` counts only the query–key pairs each attention call's mask keeps.
    """
    from archbench.models.subject import Subject

    built = model if isinstance(model, Subject) else Subject.from_module(model, inputs)
    chosen = choose_engine(built, engine, backward, attention_count)
    notes: list[str] = []
    if chosen == "fvcore":
        try:
            result = _count_fvcore(built)
        except ops.OpSchemaError:
            raise
        except Exception as exc:  # jit tracing failed: a clear line, or the dispatch engine under "auto"
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            if engine == "fvcore":
                raise UserError(f"fvcore could not trace {built.label} ({reason}); use --engine dispatch") from None
            notes.append(f"fvcore could not trace the model ({reason}); counted with the dispatch engine")
            chosen, result = "dispatch", _count_dispatch(built, backward, attention_count)
    else:
        result = _count_dispatch(built, backward, attention_count)
    result.engine = chosen
    if "routing" in result.details and built.device == "meta":
        notes.append(f"mixture-of-experts: {META_ROUTING}")
    if "attention_unfused" in result.details:
        notes.append(result.details["attention_unfused"])
    result.warnings = list(built.warnings) + notes + _uncounted_warnings(result)
    return result


def flop_records(built: Subject, *, backward: bool = False, by: str | None = None, depth: int | None = None,
                 engine: str = "auto", attention_count: str = "full") -> list[Record]:
    """Records ``macs``, ``flops`` and ``other_flops`` for the model, then per module (``by="module"``,
    down to ``depth``) or per operator (``by="operator"``) ``macs`` rows."""
    check_count_options(engine, attention_count, by)
    count = count_flops(built, backward=backward, engine=engine, attention_count=attention_count)
    point = dict(built.point)
    details: dict[str, Any] = {"engine": count.engine, "pass": "forward+backward" if backward else "forward"}
    if count.attention_macs:
        details["attention"] = ATTENTION_NOTES[attention_count]
        details["attention_count"] = attention_count
    details.update(count.details)
    closed_form = closed_form_check(built.module, batch=built.batch, seq=built.seq, phase=built.phase,
                                    attention_count=attention_count, backward=backward)
    if closed_form is not None:
        details["closed_form_macs"] = closed_form
        if (mismatch := disagreement(count.macs, closed_form)) is not None:
            details["closed_form_mismatch"] = mismatch
            count.warnings.append(mismatch)
    if count.uncounted:
        details["uncounted_ops"] = dict(count.uncounted)
    if count.significant_uncounted:
        details["significant_uncounted"] = count.significant_uncounted
    records = [
        Record.of(built.label, "macs", count.macs, point, warnings=list(count.warnings), details=details),
        Record.of(built.label, "flops", count.flops, point, details={"definition": "2 x macs"}),
        Record.of(built.label, "other_flops", count.other_flops, point,
               details={"what": "bias, normalisation, softmax, activation, pooling, elementwise (best effort)"}),
    ]
    traffic = count if count.calls else _count_dispatch(built, backward, attention_count)
    moved_details: dict[str, Any] = {"convention": BYTES_CONVENTION}
    if count is not traffic:
        moved_details["engine"] = "dispatch (the fvcore engine sees no dtypes)"
    if "routing" in traffic.details and built.device == "meta":
        moved_details["routing"] = META_EXPERT_BYTES
    records.append(Record.of(built.label, "bytes_moved", traffic.bytes_moved, point, details=moved_details))
    if count.attention_macs:
        from archbench.measure.architecture import attention_share

        records.append(Record.of(built.label, "attention_share", attention_share(count), point,
                              details={"attention_macs": count.attention_macs, "macs": count.macs,
                                       "attention_count": attention_count,
                                       "what": "MACs of attention's score and value products (QK^T, AV) / macs"}))
    if by == "module":
        moved = group_calls(traffic.calls, "module", list(count.by_module))
        for name, macs in count.by_module.items():
            if name and (depth is None or module_depth(name) <= depth):
                records.append(Record.of(built.label, "macs", macs, {**point, "module": name}))
                records.append(Record.of(built.label, "bytes_moved", moved[name].bytes_moved,
                                         {**point, "module": name}))
    elif by == "operator":
        for op, macs in sorted(count.by_operator.items(), key=lambda item: -item[1]):
            records.append(Record.of(built.label, "macs", macs, {**point, "operator": op}))
        for op, work in sorted(group_calls(traffic.calls, "operator").items(), key=lambda item: -item[1].bytes_moved):
            if work.bytes_moved:
                records.append(Record.of(built.label, "bytes_moved", work.bytes_moved, {**point, "operator": op}))
    return records


BYTES_CONVENTION = ("each op reads its inputs and writes its outputs once at their dtype's size; views move nothing; "
                    "fused attention moves Q, K, V and its output, not the scores")
META_EXPERT_BYTES = ("meta device: each token's top-k experts' weights are read once per token (the batched path); "
                     "a grouped kernel with real routing reads each routed expert once")


def module_names(calls: list[OpCall]) -> list[str]:
    """The modules the calls ran in and all their parents ("" the whole model), sorted."""
    return sorted({"", *(".".join(c.module.split(".")[:i]) for c in calls if c.module
                         for i in range(1, c.module.count(".") + 2))})


def group_calls(calls: list[OpCall], by: str, names: list[str] | None = None) -> dict[str, OpCall]:
    """The calls' work summed per ``by="operator"``, or per ``by="module"``: each module of ``names`` (default:
    the modules the calls ran in and their parents; "" the whole model) with the calls of its submodules."""
    sums: dict[str, list[int]] = {}  # op or module -> [macs, other FLOPs, bytes]
    for c in calls:
        total = sums.setdefault(c.op if by == "operator" else c.module, [0, 0, 0])
        total[0] += c.macs
        total[1] += c.other_flops
        total[2] += c.bytes_moved
    if by == "operator":
        return {op: OpCall(op, "", *t) for op, t in sums.items()}
    grouped = {}
    for name in module_names(calls) if names is None else names:
        inside = [t for module, t in sums.items() if not name or module == name or module.startswith(name + ".")]
        grouped[name] = OpCall("", name, *(sum(t[i] for t in inside) for i in range(3)))
    return grouped


def _uncounted_warnings(count: FlopCount) -> list[str]:
    warnings = []
    for op, calls in sorted(count.uncounted.items()):
        where = [name or "the model itself" for name in count.uncounted_modules.get(op, [])]
        place = f" in {', '.join(where[:3])}{', ...' if len(where) > 3 else ''}" if where else ""
        kind = "no formula" if op in count.significant_uncounted else "known negligible"
        warnings.append(f"uncounted op {op} ({calls} call{'' if calls == 1 else 's'}{place}): {kind}, "
                        f"its work is not in macs")
    return warnings


# ---------------------------------------------------------------- dispatch engine


def sdpa_kept_pairs(query, key, attn_mask=None, is_causal: bool = False, module=None) -> tuple[int, str]:
    """Query–key pairs one ``scaled_dot_product_attention`` call keeps, summed over batch and heads, and how
    they were found.

    ``is_causal`` keeps keys 0..i for query i (PyTorch's top-left alignment). A mask with values keeps its
    True entries (bool) or those above its dtype's minimum (float: transformers writes finfo.min or -inf),
    broadcast to (batch, heads, L, S). A mask on the meta device has no values: it is taken to be the causal
    mask of the attention ``module`` (its ``is_causal``) with the ``sliding_window`` of the module or its
    config, the mask's queries being the last ones (a KV cache). No mask: every pair.
    """
    import torch

    *lead, length, _ = query.shape
    source = key.shape[-2]
    full = math.prod(lead) * length * source
    if is_causal:
        return math.prod(lead) * formulas.causal_pairs(length, source), "causal (is_causal)"
    if attn_mask is None:
        return full, "full (no mask)"
    if attn_mask.device.type != "meta":
        kept = attn_mask if attn_mask.dtype == torch.bool else attn_mask > torch.finfo(attn_mask.dtype).min
        return int(kept.sum()) * full // attn_mask.numel(), "mask (its kept entries counted)"
    if not getattr(module, "is_causal", False):
        return full, "full (mask on the meta device, attention not causal)"
    config_window = getattr(getattr(module, "config", None), "sliding_window", None)
    window = getattr(module, "sliding_window", config_window)
    queries = attn_mask.shape[-2]
    kept_in_mask = formulas.causal_pairs(queries, source, window, offset=source - queries)
    how = f"sliding window {window}" if window else "causal"
    return kept_in_mask * full // (queries * source), f"{how} (meta device: from the model's config)"


@dataclass
class _AttentionCalls:
    """The scaled_dot_product_attention calls of one count: the pairs the call in flight keeps (for the kernel's
    formula), how each call was counted, the MACs of attention's score and value products."""

    count: str
    pending: int | None = None
    how: Counter = field(default_factory=Counter)
    macs: int = 0
    kept: list = field(default_factory=list)  # pairs of each fused forward call, popped by its backward (LIFO)
    unfused: int = 0  # causal counts that reached no fused kernel (math backend: bmm, counted in full)
    eager: int = 0  # score and value products of eager attention (bmm in attention modules, outside any SDPA call)
    in_call: bool = False  # an SDPA call is running
    moved: int | None = None  # on meta: the bytes the call's Q, K, V and mask hold, before the interceptor's expansion
    expanding: bool = False  # on meta: the interceptor is expanding GQA's kv heads (no traffic of the model's)


def _sdpa_interceptor(calls: _AttentionCalls, attention_module: Callable[[], Any]):
    """A TorchFunctionMode that sees each F.scaled_dot_product_attention call with its mask before it is
    dispatched, and on the meta device (where the math backend would decompose it) runs the CPU flash kernel's
    meta implementation, so that every device counts one fused op."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")

    class SdpaCalls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is not F.scaled_dot_product_attention:
                return func(*args, **kwargs)
            call = {**dict(zip(names, args)), **kwargs}
            q, k, v, mask = call["query"], call["key"], call["value"], call.get("attn_mask")
            if calls.count == "causal":
                calls.pending, how = sdpa_kept_pairs(q, k, mask, call.get("is_causal", False), attention_module())
                calls.how[how] += 1
            if q.device.type == "meta" and q.dim() == 4:
                calls.moved = ops.tensor_bytes((q, k, v, mask))  # what the fused kernel reads (GQA: the kv heads)
                if call.get("enable_gqa") and k.shape[-3] != q.shape[-3]:
                    groups = q.shape[-3] // k.shape[-3]
                    calls.expanding = True  # the CPU kernel reads the kv heads in place: this copy is not traffic
                    try:
                        k, v = (t[:, :, None].expand(-1, -1, groups, -1, -1).flatten(1, 2) for t in (k, v))
                    finally:
                        calls.expanding = False
                out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    q, k, v, call.get("dropout_p", 0.0), call.get("is_causal", False), attn_mask=mask,
                    scale=call.get("scale"))[0]
            else:
                calls.in_call = True
                try:
                    out = func(*args, **kwargs)
                finally:
                    calls.in_call = False
            if calls.pending is not None:  # no fused kernel took it: the math backend counted every pair
                calls.unfused += 1
                calls.pending = None
            return out

    return SdpaCalls()


def _module_name(tracked: str, root: str) -> str:
    """ModuleTracker's ``Root.layer1.0`` -> ``layer1.0``; the root itself -> ``""``."""
    if tracked == root:
        return ""
    return tracked[len(root) + 1:] if tracked.startswith(root + ".") else tracked


def _count_dispatch(built: Subject, backward: bool, attention_count: str = "full") -> FlopCount:
    """The dispatch adapter: a ledger mode files every op that runs through the op table; FlopCounterMode
    (whose registry holds the table's products only) decomposes what the table lacks and keeps the MACs of
    each module."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from archbench.measure import recurrent
    from archbench.models.selective_scan import selective_scans

    calls = _AttentionCalls(attention_count)
    last = [0]  # the MACs of the product the ledger has just filed, read back by FlopCounterMode

    def filed_flops(*args, **kwargs) -> int:
        return 2 * last[0]

    filed_flops._get_raw = True  # FlopCounterMode passes tensors through untouched: nothing to convert
    if recurrent.counted_at_the_call(built.module, built.device):
        recurrent.ops()  # archbench's recurrent ops exist from here on: their entries in the op table apply
    products = {packet: filed_flops for name, entry in ops.OPS.items()
                if entry.macs and not entry.traced_only and (packet := ops.packet(name)) is not None}
    counter = FlopCounterMode(display=False, custom_mapping=products)
    counter.flop_registry = {packet: f for packet, f in counter.flop_registry.items() if packet in products}
    other: Counter[str] = Counter()
    op_calls: list[OpCall] = []
    uncounted: Counter[str] = Counter()
    where: dict[str, dict[str, None]] = {}
    module = built.module
    root = type(module).__name__
    modules = dict(module.named_modules())

    def running_modules() -> list:
        """The modules whose forward is running, innermost first."""
        names = sorted((p for p in counter.mod_tracker.parents if p != "Global"), key=len, reverse=True)
        return [modules[n] for n in (_module_name(p, root) for p in names) if n in modules]

    def innermost_name() -> str | None:
        running = [p for p in counter.mod_tracker.parents if p != "Global"]
        return _module_name(max(running, key=len), root) if running else None

    def attention_module():
        return next((m for m in running_modules() if hasattr(m, "is_causal")), None)

    origins = _ForwardOrigins(innermost_name) if backward else None

    class Ledger(TorchDispatchMode):
        """Sees every op that actually runs (after FlopCounterMode's decompositions) and files it."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            self.file_op(func, args, kwargs, out)
            return out

        def file_op(self, func, args, kwargs, out) -> None:
            """Files one op through the op table: its work by operator, and the call with its module."""
            name = ops.base_name(str(func.overloadpacket))
            entry = ops.OPS.get(name)
            place = origins.current if origins is not None and origins.current is not None else innermost_name()
            if entry is None:
                moved = ops.moved_bytes(name, ops.dispatch_call(func, args, kwargs, out))
                # archbench's own stand-ins on meta move nothing the model would: the interceptor's GQA expansion,
                # and meta routing's batched path gathering expert weights (a grouped kernel reads them in place)
                if calls.expanding or (name == "index" and built.device == "meta"
                                       and isinstance(args[0], torch.nn.Parameter)):
                    moved = 0
                op_calls.append(OpCall(f"aten.{name}", place or "", 0, 0, moved))
                if name not in ops.DATA_MOVEMENT_OPS:
                    op = f"aten.{name}"
                    uncounted[op] += 1
                    if place is not None:
                        where.setdefault(op, {})[place] = None
                return
            kept = None
            if entry.attention == "forward":
                kept, calls.pending = calls.pending, None
                calls.kept.append(kept)
            elif entry.attention == "backward":
                kept = calls.kept.pop() if calls.kept else None
            call = ops.dispatch_call(func, args, kwargs, out, kept)
            work = entry.work(call)
            moved = ops.moved_bytes(name, call, work)
            if entry.attention == "forward" and calls.moved is not None:
                moved, calls.moved = calls.moved + call.first_written, None
            op_calls.append(OpCall(f"aten.{name}", place or "", work.macs if entry.macs else 0, work.other_flops,
                                   moved))
            calls.macs += work.attention_macs
            if entry.macs:
                last[0] = work.macs
                innermost = running_modules()[:1]
                if name in ("bmm", "baddbmm") and innermost and is_attention_module(innermost[0]):
                    calls.macs += work.macs  # eager attention's score and value products
                    calls.eager += bool(work.macs) and not calls.in_call
            if work.other_flops or not entry.macs:
                other[entry.other] += work.other_flops

    args, kwargs = built.example_inputs()
    # A torch-function mode turns off nn.MultiheadAttention's fast path (it checks has_torch_function): the
    # interceptor runs only where it is needed, to read masks (causal) and on meta (one fused op, as on cpu).
    needs_interceptor = attention_count == "causal" or built.device == "meta"
    interceptor = _sdpa_interceptor(calls, attention_module) if needs_interceptor else nullcontext()
    recurrent_calls = recurrent.recurrent_calls(module, built.device)  # on meta: one op per recurrent call
    with meta_routing(module, built.device) as has_experts, interceptor, recurrent_calls, \
            selective_scans(module, built.device), Ledger(), counter:
        if backward:
            with origins:
                output = module(*args, **kwargs)
            try:
                _first_tensor(output).float().sum().backward()
            finally:
                origins.remove()
        else:
            with torch.no_grad():
                module(*args, **kwargs)
    counts = counter.get_flop_counts()
    by_operator = {str(op): flops // 2 for op, flops in counts.get("Global", {}).items()}
    tracked = {_module_name(name, root): sum(per_op.values()) // 2
               for name, per_op in counts.items() if name != "Global"}
    by_module = {name: tracked[name] if name in tracked else _untracked_total(name, tracked) for name in modules}
    details: dict[str, Any] = {}
    if calls.count == "causal" and calls.eager:
        calls.how["full (eager attention: its mask is applied after the bmm)"] += calls.eager
    if calls.how:
        details["attention_calls"] = dict(calls.how)
    if calls.unfused:
        details["attention_unfused"] = (f"{calls.unfused} attention call(s) ran on the math backend "
                                        f"(bmm): their mask could not be applied, every pair counted")
    if has_experts:
        details["routing"] = META_ROUTING if built.device == "meta" else "the experts each token's router chose"
    return FlopCount(
        macs=sum(by_operator.values()),
        other_flops=sum(other.values()),
        by_operator=by_operator,
        by_module=by_module,
        uncounted=dict(uncounted),
        uncounted_modules={op: list(mods) for op, mods in where.items()},
        other_by_operator=dict(other),
        attention_macs=calls.macs,
        details=details,
        other_by_module={name: work.other_flops
                         for name, work in group_calls(op_calls, "module", list(modules)).items()},
        calls=op_calls,
    )


class _ForwardOrigins:
    """Under ``--backward``: each autograd node a torch function makes in the forward is tagged with the module
    whose forward made it; when the backward reaches the node (its pre-hook), :attr:`current` names that
    module, so the backward's ops are filed where their forward ran (ModuleTracker's backward guess can
    leave a module entered long after its gradients are done)."""

    def __init__(self, innermost: Callable[[], str | None]):
        self.innermost = innermost
        self.current: str | None = None
        self.handles: list = []
        self.tagged: set[int] = set()  # ids of the nodes tagged (each keeps its first, innermost, module)
        self.mode = None

    def __enter__(self):
        from torch.overrides import TorchFunctionMode
        from torch.utils._pytree import tree_flatten

        origins = self

        class Tagger(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                name = origins.innermost()
                if name is not None:
                    for leaf in tree_flatten(out)[0]:
                        node = getattr(leaf, "grad_fn", None)
                        if node is not None and id(node) not in origins.tagged:
                            origins.tag(node, name)
                return out

        self.mode = Tagger()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)

    def tag(self, node, name: str) -> None:
        def enter(grad_outputs):
            self.current = name

        self.tagged.add(id(node))
        self.handles.append(node.register_prehook(enter))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _untracked_total(name: str, tracked: dict[str, int]) -> int:
    """MACs of a module that never ran forward itself (a ModuleList): the sum of its outermost tracked descendants."""
    inside = [child for child in tracked if child.startswith(name + ".")]
    outermost = [c for c in inside if not any(c.startswith(other + ".") for other in inside)]
    return sum(tracked[c] for c in outermost)


def _first_tensor(output):
    """The tensor a training step's loss is taken from: the output, or the first tensor in it."""
    import torch
    from torch.utils._pytree import tree_flatten

    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "to_tuple"):  # Hugging Face ModelOutput
        output = output.to_tuple()
    for leaf in tree_flatten(output)[0]:
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            return leaf
    raise UserError("--backward: the model's output holds no floating-point tensor to take a loss from")


# ---------------------------------------------------------------- fvcore engine


def _fvcore_handles() -> dict[str, Callable]:
    """fvcore op handles for every op of the table: its work, by column, from the traced node's schema names."""

    def handle_for(name: str, entry: ops.Entry) -> Callable:
        def handle(inputs, outputs) -> Counter:
            work = entry.work(ops.traced_call(name, inputs, outputs))
            counts: Counter = Counter({name: work.macs} if entry.macs else {entry.other: work.other_flops})
            if entry.macs and work.other_flops:
                counts[entry.other] += work.other_flops
            if work.attention_macs:
                counts[ATTENTION_PRODUCTS] += work.attention_macs
            return counts

        return handle

    return {f"aten::{name}": handle_for(name, entry) for name, entry in ops.OPS.items()}


def _count_fvcore(built: Subject) -> FlopCount:
    import warnings

    import torch

    with warnings.catch_warnings():  # fvcore scripts a loss function at import: torch.jit.script's FutureWarning
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script")
        from fvcore.nn import FlopCountAnalysis

    args, _ = built.example_inputs()
    analysis = FlopCountAnalysis(built.module, args)
    analysis.clear_op_handles().set_op_handle(**_fvcore_handles())  # archbench's formulas only, fvcore's units aside
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad():
        per_module = analysis.by_module_and_operator()
        unsupported = analysis.unsupported_ops()
    is_other = lambda op: op in ops.OTHER_LABELS  # noqa: E731
    is_mac = lambda op: not is_other(op) and op != ATTENTION_PRODUCTS  # noqa: E731
    totals = per_module.get("", Counter())
    by_operator = {op: int(n) for op, n in totals.items() if is_mac(op)}
    by_module = {name: int(sum(n for op, n in ops.items() if is_mac(op))) for name, ops in per_module.items()}
    attention = [name for name, m in built.module.named_modules() if is_attention_module(m)]
    outermost = [a for a in attention if not any(a.startswith(other + ".") for other in attention)]
    eager_products = sum(per_module.get(a, {}).get(op, 0) for a in outermost for op in ("bmm", "baddbmm", "matmul"))
    uncounted = {op: n for op, n in unsupported.items() if ops.base_name(op) not in ops.DATA_MOVEMENT_OPS}
    where: dict[str, list[str]] = {}
    for op in uncounted:
        modules = [name for name in per_module if name and analysis.unsupported_ops(name).get(op)]
        deepest = [m for m in modules if not any(other.startswith(m + ".") for other in modules)]
        where[op] = deepest
    return FlopCount(
        macs=sum(by_operator.values()),
        other_flops=int(sum(n for op, n in totals.items() if is_other(op))),
        by_operator=by_operator,
        by_module=by_module,
        uncounted=uncounted,
        uncounted_modules=where,
        other_by_operator={op: int(n) for op, n in totals.items() if is_other(op)},
        attention_macs=int(totals.get(ATTENTION_PRODUCTS, 0) + eager_products),
    )
