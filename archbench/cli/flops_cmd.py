"""`archbench flops`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    AttentionCountOpt, BatchOpt, FormatOpt, HeadOpt, InputOpt, ModelArg, OutOpt, PhaseOpt, SeqOpt,
    check_output_options, finish, handle_errors, parse_input, runs_model_code,
)


@app.command("flops")
@handle_errors
@runs_model_code
def flops_command(
    model: ModelArg,
    seq: SeqOpt = None,
    input: InputOpt = None,
    batch: BatchOpt = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Also break MACs down by 'module' or 'operator'.")] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Module depth of --by module (implies it).")] = None,
    backward: Annotated[bool, typer.Option(
        "--backward", help="Count forward + backward of one training step.")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="auto, fvcore (jit tracing) or dispatch (FlopCounterMode).", metavar="[auto|fvcore|dispatch]",
        autocompletion=lambda: ["auto", "fvcore", "dispatch"])] = "auto",
    device: Annotated[str, typer.Option(
        "--device", help="auto (meta; cpu for recurrent models and --engine fvcore), cpu, meta or cuda.",
        metavar="[auto|cpu|meta|cuda|cuda:N]",
        autocompletion=lambda: ["auto", "cpu", "meta", "cuda", "cuda:0"])] = "auto",
    phase: PhaseOpt = "prefill",
    attention_count: AttentionCountOpt = "full",
    head: HeadOpt = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when an op without a formula is not on the list of negligible ones, or when the "
                    "count and a transformer's closed form from its config differ by more than 0.1%.")] = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Count MACs (multiply-accumulates) and FLOPs (= 2 x MACs) of one forward pass; other work apart.

    macs covers linear, conv, matmul/einsum, attention and recurrent weights, the convention of published tables; other_flops is bias, normalisation, softmax, activation and pooling work, best effort. Attention counts every query-key pair unless --attention-count causal.

    Every op without a formula is listed as a warning; --strict fails on those not known to be negligible. A Hugging Face transformer's count is checked against the closed form of its config (details.closed_form_macs); --strict fails when they differ.
    """
    from archbench.measure.flops import check_count_options
    from archbench.measure.run import Settings, counting_device, measure, preflight
    from archbench.models.subject import Recipe

    check_output_options(fmt, out)
    by = check_count_options(engine, attention_count, by, depth)
    settings = Settings(device="meta" if device == "auto" else device, engine=engine, counting_device=device,
                        backward=backward, attention_count=attention_count, by=by, depth=depth)
    recipe = Recipe(model, batch, seq, parse_input(input), train=backward, phase=phase, head=head)
    meta = preflight(recipe, ["flops"], settings)
    where = counting_device(meta, settings)
    records = measure(recipe, ["flops"], settings, failures="raise", meta=meta)  # one model: its failure is the answer
    details = records[0].details
    title = f"{recipe.spec}: MACs and FLOPs ({details['pass']}, {details['engine']} engine, {where})"
    finish(records, fmt, out, title, device=where)
    significant = details.get("significant_uncounted")
    if strict and significant:
        listed = ", ".join(f"{op} ({calls} calls)" for op, calls in sorted(significant.items()))
        typer.echo(f"strict: ops without a formula and not known to be negligible: {listed}", err=True)
        raise typer.Exit(1)
    if strict and "closed_form_mismatch" in details:
        typer.echo(f"strict: {details['closed_form_mismatch']}", err=True)
        raise typer.Exit(1)
