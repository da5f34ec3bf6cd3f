"""Train a DCGAN on an embedded dataset; write generator and discriminator weights, cards and sample grids.

The discriminator's card makes it an ordinary zoo model: arch ``dcgan_d``, 2 classes (0 = fake, 1 = real),
dataset ``mnist5k-gan`` (real test images + samples of the shipped generator, see :mod:`advbench.gan.dataset`).
The generator's card has ``"kind": "generator"``, so the zoo does not register it as a classifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..errors import ConfigError
from ..models.dcgan import (
    FAKE, G_LOSSES, REAL, Generator, discriminator, discriminator_loss, generator_loss,
)
from ..specs import DatasetSpec

#: Normalisation inside the discriminator ([0, 1] -> [-1, 1]), recorded in its card.
D_MEAN, D_STD = (0.5,), (0.5,)
#: The dataset the discriminator is evaluated on (registered by :func:`advbench.gan.dataset.gan_datasets`).
GAN_DATASET = "mnist5k-gan"


#: ``advbench train --recipe gan`` options (``--recipe-opt KEY=VALUE``) and their defaults.
GAN_OPTIONS: dict[str, Any] = {"g_loss": "non-saturating", "z_dim": 64, "width": 16}


def parse_gan_options(pairs: "list[str] | tuple[str, ...]") -> dict[str, Any]:
    """``["g_loss=minimax", "z_dim=32"]`` -> keyword arguments for :func:`train_gan`.

    Raises:
        ConfigError: not ``KEY=VALUE``, a key given twice, or an unknown key.
    """
    from ..train.common import parse_known_options

    return parse_known_options(pairs, GAN_OPTIONS, "recipe 'gan'", "g_loss=minimax")


class _NormalisedD(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - D_MEAN[0]) / D_STD[0])


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Write images [N, 1, H, W] in [0, 1] as one PNG grid (``nrow`` per row, 2-pixel gaps)."""
    from PIL import Image

    n, _, h, w = images.shape
    rows = -(-n // nrow)
    canvas = torch.zeros(rows * (h + 2) + 2, nrow * (w + 2) + 2)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + c * (w + 2) : 2 + c * (w + 2) + w] = images[i, 0]
    path = Path(path)
    Image.fromarray((canvas.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), mode="L").save(path)
    return path


def gan_step(
    generator: nn.Module,
    disc: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    *,
    g_loss: str = "non-saturating",
) -> tuple[float, float]:
    """One alternating update: D on (real, G(z)), then G on fresh z. Returns (d_loss, g_loss) values.

    ``disc`` maps [0, 1] images to two logits; z is drawn from the global RNG (seed it for determinism).
    """
    z = torch.randn(real.shape[0], generator.z_dim, device=real.device)
    fake = generator(z)
    d_loss = discriminator_loss(disc(real), disc(fake.detach()))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    z = torch.randn(real.shape[0], generator.z_dim, device=real.device)
    g = generator_loss(disc(generator(z)), g_loss)
    opt_g.zero_grad(set_to_none=True)
    g.backward()
    opt_g.step()
    return d_loss.item(), g.item()


def _check_arguments(dataset: DatasetSpec, epochs: int, batch_size: int, lr: float, g_loss: str) -> None:
    """Raise ConfigError for an unknown generator loss, images other than 1x28x28, or bad hyperparameters."""
    if g_loss not in G_LOSSES:
        raise ConfigError(f"unknown generator loss {g_loss!r}; use one of {', '.join(G_LOSSES)}")
    if tuple(dataset.input_shape) != (1, 28, 28):
        raise ConfigError(f"the DCGAN is built for 1x28x28 images; {dataset.name} has {dataset.input_shape}")
    if epochs < 1 or batch_size < 2 or not lr > 0:
        raise ConfigError(f"need epochs >= 1, batch size >= 2, lr > 0 (got {epochs}, {batch_size}, {lr})")


def _epoch(
    gen: nn.Module, disc: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, x_dev: torch.Tensor,
    shuffle: torch.Generator, *, batch_size: int, g_loss: str,
) -> tuple[float, float, int]:
    """One pass over x_dev [N, 1, 28, 28] in batches shuffled by ``shuffle``; returns (d sum, g sum, steps)."""
    gen.train()
    disc.train()
    order = torch.randperm(len(x_dev), generator=shuffle).to(x_dev.device)
    d_sum = g_sum = 0.0
    steps = 0
    for start in range(0, len(order) - 1, batch_size):
        index = order[start : start + batch_size]
        if len(index) < 2:
            continue
        d_value, g_value = gan_step(gen, disc, opt_g, opt_d, x_dev[index], g_loss=g_loss)
        d_sum, g_sum, steps = d_sum + d_value, g_sum + g_value, steps + 1
    return d_sum, g_sum, steps


def _fit(
    x_dev: torch.Tensor, *, epochs: int, batch_size: int, lr: float, z_dim: int, width: int, g_loss: str, seed: int,
    device: str, console: Any,
) -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Train G and D on x_dev [N, 1, 28, 28] in [0, 1], seeded (the caller's global RNG stream is left as it was).

    Returns:
        (generator, discriminator network without its normalisation, samples [64, 1, 28, 28] of a fixed z,
        8 samples of the first 8 of those z after each epoch [8 * epochs, 1, 28, 28], the per-epoch losses).
    """
    shuffle = torch.Generator().manual_seed(seed)
    history = []
    with torch.random.fork_rng(devices=[torch.device(device).index or 0] if device.startswith("cuda") else []):
        torch.manual_seed(seed)
        gen = Generator(z_dim=z_dim, width=width).to(device)
        d_net = discriminator((1, 28, 28), 2, width=width)
        disc = _NormalisedD(d_net).to(device)
        opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
        fixed_z = torch.randn(64, z_dim).to(device)
        rows = []
        for epoch in range(epochs):
            d_sum, g_sum, steps = _epoch(gen, disc, opt_g, opt_d, x_dev, shuffle, batch_size=batch_size, g_loss=g_loss)
            gen.eval()
            with torch.no_grad():
                rows.append(gen(fixed_z[:8]).cpu())
            history.append({"epoch": epoch + 1, "d_loss": round(d_sum / steps, 4), "g_loss": round(g_sum / steps, 4)})
            console.print(f"gan epoch {epoch + 1}/{epochs}: d_loss {d_sum / steps:.4f} g_loss {g_sum / steps:.4f}")
        gen.eval()
        disc.eval()
        with torch.no_grad():
            grid = gen(fixed_z).cpu()
    return gen, d_net, grid, torch.cat(rows), history


def _common_card_entries(
    dataset: DatasetSpec, name: str, *, epochs: int, batch_size: int, lr: float, z_dim: int, width: int,
    g_loss: str, seed: int, device: str, history: list[dict[str, Any]], wall: float,
) -> dict[str, Any]:
    """What both DCGAN cards record: the recipe, the training run and the command that reproduces it."""
    from ..train.common import package_version

    recipe = {
        "name": "gan",
        "description": "DCGAN (Radford et al. 2016); discriminator real=1/fake=0 cross-entropy",
        "g_loss": g_loss,
        "optimizer": "adam",
        "lr": lr,
        "betas": [0.5, 0.999],
        "batch_size": batch_size,
        "epochs": epochs,
        "z_dim": z_dim,
        "width": width,
    }
    return {
        "train_dataset": dataset.name,
        "train_split": "train",
        "recipe": recipe,
        "seed": seed,
        "epochs": epochs,
        "history": history,
        "wall_time_s": wall,
        "versions": {"advbench": package_version("advbench", __version__), "torch": torch.__version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "command": f"advbench train --recipe gan --dataset {dataset.name} --name {name} --epochs {epochs} "
        f"--batch-size {batch_size} --lr {lr:g} --recipe-opt g_loss={g_loss} --recipe-opt z_dim={z_dim} "
        f"--recipe-opt width={width} --seed {seed}",
    }


def _cards(
    out_dir: Path, name: str, common: dict[str, Any], *, z_dim: int, width: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The generator's and the discriminator's cards (before the discriminator's evaluation), in card key order.

    ``common`` is :func:`_common_card_entries`; the weights in ``out_dir`` are hashed into each card.
    """
    from ..models.weights import sha256_file

    g_name, d_name = f"dcgan_g.{name}", f"dcgan_d.{name}"
    g_card = {
        "name": g_name,
        "kind": "generator",
        "arch": "dcgan_g",
        "arch_options": {"z_dim": z_dim, "width": width},
        "output_shape": [1, 28, 28],
        "discriminator": d_name,
        "samples_png": f"{g_name}.png",
        **common,
        "sha256": sha256_file(out_dir / f"{g_name}.safetensors"),
    }
    d_card = {
        "name": d_name,
        "kind": "classifier",
        "arch": "dcgan_d",
        "arch_options": {"width": width},
        "dataset": GAN_DATASET,
        "input_shape": [1, 28, 28],
        "num_classes": 2,
        "class_names": ["fake", "real"],
        "mean": list(D_MEAN),
        "std": list(D_STD),
        "generator": g_name,
        **common,
        "sha256": sha256_file(out_dir / f"{d_name}.safetensors"),
    }
    return g_card, d_card


def _evaluate_discriminator(dataset: DatasetSpec, d_card: dict[str, Any], out_dir: Path, device: str) -> None:
    """Add the discriminator's accuracies on mnist5k-gan, built from the generator just written, to ``d_card``.

    Real test images vs fresh samples: overall, per side (real judged real, fake judged fake) and robust (PGD).
    """
    from ..models.zoo import load_zoo_model
    from ..train.evaluate import card_robust_accuracy
    from .dataset import build_gan_split

    d_name = d_card["name"]
    x_eval, y_eval = build_gan_split(dataset, out_dir / f"{d_card['generator']}.json")
    model = load_zoo_model(d_card, out_dir / f"{d_name}.safetensors", device=device)
    with torch.inference_mode():
        pred = torch.cat([model(x_eval[i : i + 500].to(device)).argmax(1).cpu() for i in range(0, len(y_eval), 500)])
    real, fake = y_eval == REAL, y_eval == FAKE
    d_card["clean_accuracy"] = round(float((pred == y_eval).float().mean()), 6)
    d_card["real_judged_real"] = round(float((pred[real] == REAL).float().mean()), 6)
    d_card["fake_judged_fake"] = round(float((pred[fake] == FAKE).float().mean()), 6)
    robust, d_card["robust_eval"] = card_robust_accuracy(model, d_name, "mnist5k-gan", x_eval, y_eval, eps=0.3, steps=20,
                                                         num_classes=2, device=device)
    d_card["robust_accuracy"] = round(robust, 6)


def train_gan(
    *, dataset: DatasetSpec, out_dir: str | Path, name: str = "mnist5k", epochs: int = 20, batch_size: int = 64,
    lr: float = 2e-4, z_dim: int = 64, width: int = 16, g_loss: str = "non-saturating", seed: int = 0,
    device: str = "cpu", progress: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train a DCGAN on ``dataset``'s train split (Adam, betas (0.5, 0.999), as in Radford et al.).

    Writes, into ``out_dir``: ``dcgan_g.<name>.safetensors/.json`` (generator, ``"kind": "generator"``),
    ``dcgan_d.<name>.safetensors/.json`` (the discriminator, a 2-class zoo model on :data:`GAN_DATASET`),
    ``dcgan_g.<name>.png`` (a grid of 64 samples from a fixed z) and ``dcgan_g.<name>.epochs.png`` (one row of
    8 fixed-z samples per epoch). Seeded: the same arguments give the same weights on CPU.

    Returns:
        (generator card, discriminator card).
    """
    from rich.console import Console

    from ..train.cards import write_card
    from ..train.common import save_state_dict

    _check_arguments(dataset, epochs, batch_size, lr, g_loss)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g_name, d_name = f"dcgan_g.{name}", f"dcgan_d.{name}"
    console = Console(stderr=True, quiet=not progress)
    started = time.perf_counter()
    x_train, _ = dataset.load("train")
    hyper = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "z_dim": z_dim, "width": width, "g_loss": g_loss,
             "seed": seed, "device": device}
    gen, d_net, grid, rows, history = _fit(x_train.to(device), console=console, **hyper)
    save_grid(grid, out_dir / f"{g_name}.png")
    save_grid(rows, out_dir / f"{g_name}.epochs.png")
    save_state_dict(gen, out_dir / f"{g_name}.safetensors")
    save_state_dict(d_net, out_dir / f"{d_name}.safetensors")
    wall = round(time.perf_counter() - started, 2)
    common = _common_card_entries(dataset, name, history=history, wall=wall, **hyper)
    g_card, d_card = _cards(out_dir, name, common, z_dim=z_dim, width=width)
    write_card(out_dir / f"{g_name}.json", g_card)
    write_card(out_dir / f"{d_name}.json", d_card)
    _evaluate_discriminator(dataset, d_card, out_dir, device)
    d_card["wall_time_s"] = round(time.perf_counter() - started, 2)
    write_card(out_dir / f"{d_name}.json", d_card)
    return g_card, d_card


def reproduce_gan(
    card: Mapping[str, Any], out_dir: str | Path, *, dataset: DatasetSpec | Callable[[str], DatasetSpec],
    device: str, progress: bool, zoo_dirs: Sequence[str | Path] | None = None,
) -> tuple[dict[str, Any], float]:
    """Re-train a DCGAN from its generator's or discriminator's card; returns the new discriminator card."""
    from ..train.cards import find_card
    from ..train.reproduce import dataset_of

    recipe = card["recipe"]
    _, d_card = train_gan(
        dataset=dataset_of(dataset, card.get("train_dataset", "mnist-5k")),
        out_dir=out_dir,
        name=str(card["name"]).split(".", 1)[1],
        epochs=int(recipe["epochs"]),
        batch_size=int(recipe["batch_size"]),
        lr=float(recipe["lr"]),
        z_dim=int(recipe["z_dim"]),
        width=int(recipe["width"]),
        g_loss=str(recipe["g_loss"]),
        seed=int(card.get("seed", 0)),
        device=device,
        progress=progress,
    )
    recorded = card.get("clean_accuracy")
    if recorded is None:  # a generator's card: compare with its discriminator's
        recorded = find_card(str(card["discriminator"]), zoo_dirs)[0].get("clean_accuracy", 0.0)
    return d_card, round(100 * (d_card["clean_accuracy"] - float(recorded)), 4)
