"""How a trial computes on its device: mixed precision and memory format on CUDA, plain fp32 elsewhere.

On CUDA, by default: autocast to bf16 where the GPU has it (Ampere and later; no loss scaling needed), else fp16
with a GradScaler, and `channels_last` tensors (convolutions on tensor cores want NHWC). The config keys `amp` and
`channels_last` turn either off. On the CPU both are ignored: CPU autocast is slower than fp32 for these
convolutions, and results stay bit-for-bit what they were.

The cached adversarial sets are crafted in fp32 whatever the trial uses: a set is shared by every trial and
every later final stage (keyed by its spec, not by the hardware that made it), so its images must not depend
on the GPU that happened to craft them.
"""
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Precision:
    device_type: str
    dtype: torch.dtype | None = None  # the autocast dtype; None = fp32 throughout
    channels_last: bool = False

    @property
    def scales_loss(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range."""
        return self.dtype == torch.float16

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A pass-through unless fp16 needs it."""
        return torch.amp.GradScaler(self.device_type, enabled=self.scales_loss)

    def module(self, model: nn.Module) -> nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def images(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def describe(self) -> str:
        dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        return f"{dtype}{', channels_last' if self.channels_last else ''}"


FP32 = Precision("cpu")


def precision_for(device: torch.device | str, amp: bool = True, channels_last: bool = True) -> Precision:
    device = torch.device(device)
    if device.type != "cuda":
        return Precision(device.type)
    dtype = None
    if amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision("cuda", dtype, channels_last)
