"""Losses of weight-sharing training: label loss for the largest subnet, soft-target distillation for the rest."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy against the teacher's probabilities (in-place distillation, as in OFA and BigNAS)."""
    log_probs = F.log_softmax(logits / temperature, dim=-1)
    return -(teacher_probs * log_probs).sum(dim=-1).mean() * temperature ** 2
