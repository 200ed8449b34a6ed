"""The penalties the method specs choose between, each a plain function of tensors."""
import torch
import torch.nn.functional as F
from torch import nn


def head_penalty(head: nn.Linear, beta: float) -> torch.Tensor:
    """0.5 * beta * ||W_fc||^2: the paper's last-layer weight decay, on every method."""
    return 0.5 * beta * head.weight.pow(2).sum()


def l2sp_penalty(parameters: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum ||w - w0||^2 over the backbone parameters the pretrained model provides (L2-SP)."""
    return sum((parameters[name] - reference[name]).pow(2).sum() for name in reference)


def feature_distillation(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """sum over distilled stages of MSE(student, teacher), each averaged over B*C*H*W (the paper's code)."""
    return sum(F.mse_loss(s, t) for s, t in zip(student, teacher, strict=True))
