"""The model wrapper every attack sees: [0, 1] inputs in, logits out, normalisation inside.

Keeping normalisation inside the model is what makes an epsilon mean the same thing for every model
(the most reported confusion across peer libraries is normalising outside and silently rescaling eps).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ClassifierWrapper(nn.Module):
    """Wrap a classifier so that it takes images in [0, 1].

    The wrapped network is put in eval mode (BatchNorm statistics and dropout fixed, so results do not depend
    on the batch size) and its parameters are frozen (attacks differentiate with respect to inputs only).

    Args:
        net: the classifier; takes normalised [B, C, H, W] inputs and returns logits [B, K].
        mean, std: per-channel normalisation, length C (or 1, broadcast to every channel).
        input_shape: (C, H, W) the network expects.
        num_classes: K.
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(tuple(std), dtype=torch.float32).view(1, -1, 1, 1))
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.freeze()

    def freeze(self) -> "ClassifierWrapper":
        """Eval mode and no parameter gradients."""
        self.eval()
        for param in self.parameters():
            param.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "ClassifierWrapper":
        # Training code (advbench.train) unwraps ``.net``; the wrapper itself always evaluates.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] in [0, 1] -> logits [B, K]."""
        return self.net((x - self.mean) / self.std)

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, num_classes={self.num_classes}"
