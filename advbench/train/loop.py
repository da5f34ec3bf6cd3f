"""The fit loop: AdamW with a per-step cosine schedule, shuffling and shift augmentation from a seeded generator.

The network is trained behind the same [0, 1] -> normalise step that :class:`ClassifierWrapper` applies
(:class:`Normalised`), so the shipped model takes [0, 1] inputs and adversarial-training recipes can perturb
in pixel space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from ..models.pooling import channels_last_pools
from .catalog import LossFn

WEIGHT_DECAY = 1e-4


class Normalised(nn.Module):
    """[B, C, H, W] in [0, 1] -> net((x - mean) / std): ClassifierWrapper's maths, but trainable.

    (ClassifierWrapper pins eval mode and freezes parameters, which is right for attacks and wrong here.)
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(tuple(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift] on both axes.

    Pads with 0, the background of the digit datasets, so digits move without being cut off for small shifts.

    Args:
        x: [B, C, H, W] images in [0, 1].
        max_shift: largest shift in pixels (0 returns ``x``).
        generator: CPU generator the offsets are drawn from (keeps training reproducible).

    Returns:
        [B, C, H, W] shifted images, on ``x``'s device.
    """
    if max_shift <= 0:
        return x
    batch, channels, height, width = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator).to(x.device)
    rows = (offsets[0, :, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(width, device=x.device))[:, None, None, :]
    samples = torch.arange(batch, device=x.device)[:, None, None, None]
    return padded[samples, torch.arange(channels, device=x.device)[None, :, None, None], rows, cols]


def accelerator_indices(device: str) -> list[int]:
    """Devices whose RNG state fork_rng must save besides the CPU's (the CUDA device trained on, if any)."""
    dev = torch.device(device)
    return [dev.index or 0] if dev.type == "cuda" else []


def _progress_bar(progress: bool) -> Progress:
    """The rich progress bar on stderr (``progress`` False: a disabled one)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    loss_fn: LossFn,
    options: Mapping[str, Any],
    epochs: int,
    batch_size: int,
    lr: float,
    shift: int,
    seed: int,
    device: str,
    title: str,
    progress: bool,
) -> None:
    """Train ``model`` ([B, C, H, W] in [0, 1] -> logits) in place with AdamW and a per-step cosine schedule.

    Shuffling and augmentation draw from a generator seeded with ``seed``, independent of the global RNG.
    ``x_train`` is [N, C, H, W] in [0, 1], ``y_train`` [N]. Leaves the model in eval mode. On the CPU its max
    pools run channels-last (:mod:`advbench.models.pooling`: the same numbers, faster).
    """
    for param in model.parameters():
        param.requires_grad_(True)
    if torch.device(device).type == "cpu":
        channels_last_pools(model)  # bit-identical gradients, faster max pools (advbench.models.pooling)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    batches = -(-len(y_train) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    x_dev, y_dev = x_train.to(device), y_train.to(device)
    with _progress_bar(progress) as bar:
        task = bar.add_task(title, total=epochs * batches, status="")
        for epoch in range(epochs):
            model.train()  # BatchNorm/dropout in training mode for the updates
            epoch_options = {**options, "_epoch": epoch, "_epochs": epochs}  # eps warm-up schedules read these
            order = torch.randperm(len(y_train), generator=generator).to(device)
            total_loss, seen = 0.0, 0
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                if len(index) < 2:  # BatchNorm cannot train on a batch of one; skip the trailing sample
                    bar.advance(task)
                    continue
                x_batch = random_shift(x_dev[index], shift, generator)
                loss = loss_fn(model, x_batch, y_dev[index], epoch_options)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(index)
                seen += len(index)
                bar.update(task, advance=1, status=f"epoch {epoch + 1}/{epochs} loss {total_loss / seen:.4f}")
    model.eval()
