"""Bytes a built model holds and bytes a device has free: what the fits checks before building, timing and
measuring memory compare (read by :mod:`archbench.models.build` and :mod:`archbench.measure` alike)."""

from __future__ import annotations


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
