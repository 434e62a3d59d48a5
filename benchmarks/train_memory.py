"""Acceptance check: a training step's measured peak memory against its prediction (``memory --phase train``).

For an MLP, a small CNN and a 2-layer GPT-2 with its LM head, each measured in a fresh process (two AdamW steps,
the second's peak over the memory before the model was built: peak RSS on the CPU, max_memory_allocated on
CUDA), prints the predicted breakdown, the measured peak and measured / predicted. Exit status 1 when a ratio is
outside 1 ± the tolerance (25%), 2 when a case could not be measured.

    PYTHONPATH=. .venv/bin/python benchmarks/train_memory.py [--device cpu] [--tolerance 0.25] [--checkpointing]
"""

from __future__ import annotations

import argparse
import sys

CASES = {
    "mlp": dict(spec="mlp:hidden=2048x2048x2048", batch=256),
    "small cnn": dict(spec="resnet18", batch=16),
    "gpt2 2 layers": dict(spec="gpt2:n_layer=2", batch=2, seq=512, head=True),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=0.25)
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--checkpointing", action="store_true")
    args = parser.parse_args()

    from archbench.measure.memory import measure_memory
    from archbench.models.subject import Recipe

    worst = 0
    print(f"{'case':<15} {'weights':>9} {'grads':>9} {'states':>9} {'acts':>9} {'predicted':>10} {'measured':>10} "
          f"{'ratio':>6}   (MiB)")
    for name, case in CASES.items():
        recipe = Recipe(case["spec"], case["batch"], case.get("seq"), case.get("input_shape"), phase="train",
                        head=case.get("head", False), optimizer=args.optimizer, checkpointing=args.checkpointing)
        records = {r.metric: r for r in measure_memory(recipe, device=args.device)}
        peak = records["peak_memory_bytes"]
        if peak.error:
            print(f"{name:<15} not measured: {peak.error}")
            worst = max(worst, 2)
            continue
        mib = {m: records[m].value / 2**20 for m in ("weights_bytes", "gradients_bytes", "optimizer_state_bytes",
                                                     "activation_bytes", "predicted_peak_bytes")}
        ratio = peak.details["measured_over_predicted"]
        ok = abs(ratio - 1) <= args.tolerance
        print(f"{name:<15} {mib['weights_bytes']:9.1f} {mib['gradients_bytes']:9.1f} "
              f"{mib['optimizer_state_bytes']:9.1f} {mib['activation_bytes']:9.1f} {mib['predicted_peak_bytes']:10.1f} "
              f"{peak.value / 2**20:10.1f} {ratio:6.3f}{'' if ok else '   OUTSIDE'}")
        worst = max(worst, 0 if ok else 1)
    return worst


if __name__ == "__main__":
    sys.exit(main())
