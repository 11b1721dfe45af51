"""The torch side of swanlab_watch (watch.py): grouped L2 norms and histograms of tensors, with
as few operations and device syncs as possible. Imported only on a measured step.

A measured step is one pass per device: every tensor's norm (``torch._foreach_norm``, one
kernel launch per device and dtype, as ``clip_grad_norm_`` does), stacked and read back at once
(the one sync), then squared and summed into the bins in Python (each tensor counts in two
bins: its unit and its kind). Which device each tensor is on is known from its parameter, once.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch


class BinnedNorms:
    """sqrt of the summed squared L2 norms of tensors, per bin; tensor ``i`` lives on
    ``devices[i]`` and adds to the bins ``bins_of[i]`` (both fixed for the object's life)."""

    def __init__(self, bins_of: list[tuple[int, ...]], n_bins: int, devices: list) -> None:
        self.bins_of = bins_of
        self.n_bins = n_bins
        self.by_device: dict[Any, list[int]] = {}
        for i, device in enumerate(devices):
            self.by_device.setdefault(device, []).append(i)

    @torch.no_grad()
    def __call__(self, tensors: list) -> tuple[list[float], list[bool]]:
        """The norm per bin and whether any tensor (not None) landed in it."""
        sums = [0.0] * self.n_bins
        present = [False] * self.n_bins
        bins_of = self.bins_of
        for positions in self.by_device.values():
            there = [i for i in positions if tensors[i] is not None]
            if not there:
                continue
            values = torch.stack(_norms([tensors[i] for i in there])).tolist()  # one sync
            for i, value in zip(there, values):
                square = value * value
                for b in bins_of[i]:
                    sums[b] += square
                    present[b] = True
        return [math.sqrt(s) for s in sums], present


def _norms(tensors: list) -> list:
    """The L2 norm of each tensor, in float32 on its own device (no sync)."""
    try:
        return list(torch._foreach_norm(tensors, 2, dtype=torch.float32))
    except Exception:
        return [torch.linalg.vector_norm(t, dtype=torch.float32) for t in tensors]


@torch.no_grad()
def histograms(what: str, tensors: list, kind_index: list[int], kinds: list[str],
               bins: int) -> dict[str, tuple]:
    """Per kind, the values' histogram as plain data: (counts, [low, high])."""
    out: dict[str, tuple] = {}
    for k, kind in enumerate(kinds):
        parts = [t.reshape(-1).float().cpu() for t, at in zip(tensors, kind_index)
                 if t is not None and at == k]
        values: Optional[torch.Tensor] = torch.cat(parts) if parts else None
        if values is None or values.numel() == 0:
            continue
        low, high = values.min().item(), values.max().item()
        if high <= low:
            high = low + 1e-12
        counts = torch.histc(values, bins=bins, min=low, max=high)
        out[f"watch/{what.replace('_norm', '')}_hist/{kind}"] = (counts.tolist(), [low, high])
    return out
