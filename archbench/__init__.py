"""archbench: measure neural-network architectures and settle claims about them with numbers.

The Python API is the code the command line runs::

    import archbench
    counts = archbench.count_params(model)                    # .total .trainable .frozen .buffers .by_module
    flops = archbench.count_flops(model, inputs)              # .macs .flops (= 2 x macs) .other_flops .uncounted
    records = archbench.measure_latency(model, inputs)        # latency_s (raw samples in details), throughput
    records = archbench.measure_memory("my_net.py:build", input_shape=(3, 224, 224))  # rebuilt in a fresh process
    records = archbench.roofline(model, inputs, hardware="h100-sxm")  # predicted time from FLOPs and bytes moved
    subject = archbench.build("hf:llama:num_hidden_layers=2", seq=128, device="meta")  # any model argument
    print(archbench.summary(model, inputs))                   # one tree: type, output, params, MACs, share

``inputs`` is a tensor, a tuple of positional inputs or a dict of keyword inputs. Importing
archbench does not import torch; each function does when first called.
"""

__version__ = "0.1.0"

_API = {
    "build": ("archbench.models.build", "build_model"),
    "count_params": ("archbench.measure.params", "count_params"),
    "count_flops": ("archbench.measure.flops", "count_flops"),
    "measure_latency": ("archbench.measure.latency", "measure_latency"),
    "measure_memory": ("archbench.measure.memory", "measure_memory"),
    "roofline": ("archbench.measure.roofline", "roofline"),
    "measure_model": ("archbench.measure.run", "measure"),  # not "measure": that is the subpackage
    "Settings": ("archbench.measure.run", "Settings"),
    "Recipe": ("archbench.models.subject", "Recipe"),
    "Subject": ("archbench.models.subject", "Subject"),
    "summary": ("archbench.measure.summary", "summary"),
}

__all__ = sorted(_API)


def __getattr__(name: str):
    """The API's functions, imported on first use (so ``import archbench`` stays light)."""
    if name not in _API:
        raise AttributeError(f"module 'archbench' has no attribute {name!r}")
    import importlib

    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value
