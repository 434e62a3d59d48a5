"""`archbench flops`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    BatchOpt, FormatOpt, InputOpt, ModelArg, OutOpt, SeqOpt, check_output_options, finish, handle_errors, parse_input,
)

LARGE_MODEL_PARAMS = 10**9  # --device auto counts models above this on the meta device


@app.command("flops")
@handle_errors
def flops_command(
    model: ModelArg,
    seq: SeqOpt = None,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    by: Annotated[Optional[str], typer.Option("--by", help="Also break MACs down by 'module' or 'operator'.")] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Module depth of --by module (implies it).")] = None,
    backward: Annotated[bool, typer.Option(
        "--backward", help="Count forward + backward of one training step.")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="auto, fvcore (jit tracing) or dispatch (FlopCounterMode).")] = "auto",
    device: Annotated[str, typer.Option(
        "--device", help="auto (cpu; meta above 1B parameters), cpu, meta or cuda.")] = "auto",
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when an op without a formula is not on the list of negligible ones.")] = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Count MACs (multiply-accumulates) and FLOPs (= 2 x MACs) of one forward pass; other work apart.

    macs covers linear, conv, matmul/einsum, attention (full L×S, causal included) and recurrent weights, the convention of published tables; other_flops is bias, normalisation, softmax, activation and pooling work, best effort.

    Every op without a formula is listed as a warning; --strict fails on those not known to be negligible.
    """
    from archbench.errors import UserError
    from archbench.measure.flops import ENGINES, flop_records

    check_output_options(fmt, out)
    if by not in (None, "module", "operator"):
        raise UserError(f"unknown --by {by!r}; expected module or operator")
    if depth is not None:
        if depth < 1:
            raise UserError(f"--depth must be a positive integer, got {depth}")
        if by == "operator":
            raise UserError("--depth applies to --by module, not --by operator")
        by = "module"
    if engine not in ENGINES:
        raise UserError(f"unknown --engine {engine!r}; expected one of {', '.join(ENGINES)}")
    shape = parse_input(input)
    if device == "auto":
        device = _auto_device(model, batch, shape, seq)
    built = _build(model, device, batch=batch, input_shape=shape, seq=seq, train=backward)
    records = flop_records(built, backward=backward, by=by, depth=depth, engine=engine)
    details = records[0].details
    title = f"{built.spec}: MACs and FLOPs ({details['pass']}, {details['engine']} engine, {device})"
    finish(records, fmt, out, title, device=device)
    significant = details.get("significant_uncounted")
    if strict and significant:
        listed = ", ".join(f"{op} ({calls} calls)" for op, calls in sorted(significant.items()))
        typer.echo(f"strict: ops without a formula and not known to be negligible: {listed}", err=True)
        raise typer.Exit(1)


def _build(model: str, device: str, **options):
    """build_model, with a builder's own failure (e.g. an init that cannot run on meta) as one clear line."""
    from archbench.errors import UserError
    from archbench.models import build_model

    try:
        return build_model(model, device=device, **options)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{model} could not be built on {device}: {type(exc).__name__}: {exc}") from None


def _auto_device(model: str, batch: int, shape, seq) -> str:
    """cpu, or meta for models above :data:`LARGE_MODEL_PARAMS` parameters (counted without allocating them)."""
    from archbench.measure.params import count_params
    from archbench.models import build_model

    skeleton = build_model(model, device="meta", batch=batch, input_shape=shape, seq=seq)
    return "meta" if count_params(skeleton.module).total > LARGE_MODEL_PARAMS else "cpu"
