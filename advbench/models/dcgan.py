"""A small DCGAN (Radford et al. 2016) for 28x28x1 images, and its two losses.

The discriminator is an ordinary two-logit classifier (class 0 = fake, class 1 = real) over *normalised*
inputs, so the zoo wraps it in :class:`~advbench.models.wrapper.ClassifierWrapper` (mean 0.5, std 0.5 in its
card: [0, 1] -> [-1, 1]) and every attack runs on it unchanged. ``D(x)``, the probability of "real", is
``softmax(logits)[:, 1] = sigmoid(l1 - l0)``.

The generator maps z [B, z_dim] to images [B, 1, 28, 28] in [0, 1] (``(tanh + 1) / 2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Generator losses: ``non-saturating`` minimises -log D(G(z)) (Goodfellow et al. 2014's fix for the
#: vanishing gradient early on, when D rejects every sample); ``minimax`` minimises log(1 - D(G(z))).
G_LOSSES: tuple[str, ...] = ("non-saturating", "minimax")
REAL, FAKE = 1, 0


class Generator(nn.Module):
    """z [B, z_dim] -> fc -> 2w x 7 x 7 -> convT 14x14 (w) -> convT 28x28 (1) -> [0, 1]; BatchNorm + ReLU."""

    def __init__(self, z_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.fc = nn.Sequential(nn.Linear(z_dim, 2 * width * 7 * 7), nn.BatchNorm1d(2 * width * 7 * 7), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.deconv(self.fc(z)) + 1) / 2


def discriminator(
    input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 2, *, width: int = 32
) -> nn.Module:
    """Normalised [B, C, 28, 28] -> conv4 s2 (w) - LeakyReLU - conv4 s2 (2w) - LeakyReLU - fc(2) logits.

    No BatchNorm: the discriminator is also an evaluated model, and eval-mode statistics would make it a
    different function from the one trained (the DCGAN paper's BatchNorm in D is left out on purpose).
    """
    channels, height, width_px = input_shape
    if num_classes != 2:
        raise TypeError(f"a GAN discriminator has 2 classes (fake, real), got num_classes={num_classes}")
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(2 * width * (height // 4) * (width_px // 4), 2),
    )


def prob_real(logits: torch.Tensor) -> torch.Tensor:
    """D(x) = P(real) [B] from two logits [B, 2]."""
    return torch.softmax(logits, dim=1)[:, REAL]


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """``-mean log D(x) - mean log(1 - D(G(z)))``: cross-entropy with real = 1, fake = 0."""
    real = torch.full((logits_real.shape[0],), REAL, dtype=torch.long, device=logits_real.device)
    fake = torch.full((logits_fake.shape[0],), FAKE, dtype=torch.long, device=logits_fake.device)
    return F.cross_entropy(logits_real, real) + F.cross_entropy(logits_fake, fake)


def generator_loss(logits_fake: torch.Tensor, kind: str = "non-saturating") -> torch.Tensor:
    """The generator's loss on D's logits for its samples, [B, 2] -> scalar.

    ``non-saturating``: ``-mean log D(G(z))``; ``minimax``: ``mean log(1 - D(G(z)))`` (the game's value,
    whose gradient vanishes when D confidently rejects the samples).
    """
    log_p = F.log_softmax(logits_fake, dim=1)
    if kind == "non-saturating":
        return -log_p[:, REAL].mean()
    if kind == "minimax":
        return log_p[:, FAKE].mean()
    raise ValueError(f"unknown generator loss {kind!r}; use one of {', '.join(G_LOSSES)}")


def load_generator(card_path, device: str = "cpu") -> Generator:
    """The generator of a ``"kind": "generator"`` card (a path; sha256 checked), in eval mode."""
    import json
    from pathlib import Path

    from ..errors import WeightsError
    from .weights import load_into, load_state_dict, sha256_file

    card_path = Path(card_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    weights = card_path.with_suffix(".safetensors")
    if not weights.is_file():
        raise WeightsError(f"generator weights {weights} are missing; re-train with `advbench train --recipe gan`")
    if sha256_file(weights) != card.get("sha256"):
        raise WeightsError(f"{weights} does not match the sha256 in its card; re-train or reinstall")
    net = Generator(**card.get("arch_options", {}))
    load_into(net, load_state_dict(weights), source=str(weights))
    return net.to(device).eval()
