"""The one place AdverTorch is imported.

AdverTorch 0.2.3 (its latest release) imports `torch.autograd.gradcheck.zero_gradients`, which torch
removed in 1.9; we install an equivalent before the first `import advertorch`.
"""
import importlib

import torch

# `torch.autograd.gradcheck` the attribute is a function; the module must come from the import system.
_gradcheck = importlib.import_module("torch.autograd.gradcheck")


def _zero_gradients(inputs: torch.Tensor | list | tuple) -> None:
    if isinstance(inputs, torch.Tensor):
        if inputs.grad is not None:
            inputs.grad.detach_()
            inputs.grad.zero_()
    else:
        for item in inputs:
            _zero_gradients(item)


if not hasattr(_gradcheck, "zero_gradients"):
    _gradcheck.zero_gradients = _zero_gradients

from advertorch.attacks import LinfPGDAttack  # noqa: E402  (needs the shim above)

__all__ = ["LinfPGDAttack"]
