"""The site's pictures: gallery strips (clean | amplified perturbation | adversarial) from the images a run
stored (:mod:`advbench.engine.gallery`), and input-gradient saliency computed here from the loaded models.

Pictures are PNG (raster data: a 28 x 28 digit is a few hundred bytes, shown enlarged with pixelated
scaling). File names are numbered, never derived from model or attack names, so no plugin string reaches a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class Picture:
    """One image on a page: its file (relative to the site) and its caption."""

    src: str
    caption: str


def write_png(path: Path, image: torch.Tensor, *, cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0) -> None:
    """Save ``image`` [C, H, W] (C = 1 or 3) as a PNG; one channel uses ``cmap``, three are RGB in [0, 1]."""
    from .plots import pyplot

    pyplot()  # one place checks matplotlib is installed and selects the file-only backend
    import matplotlib.image as mpimg

    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.detach().float().cpu().numpy()
    if array.shape[0] == 1:
        mpimg.imsave(path, array[0], cmap=cmap, vmin=vmin, vmax=vmax, format="png", metadata={"Software": None})
    else:
        rgb = np.clip(np.moveaxis(array[:3], 0, -1), vmin, vmax)
        mpimg.imsave(path, (rgb - vmin) / (vmax - vmin), format="png", metadata={"Software": None})


def class_name(label: int, discriminator: bool) -> str:
    """How a class is shown: ``"fake"``/``"real"`` for a GAN discriminator (0 = fake, 1 = real), else its index."""
    return ("fake", "real")[label] if discriminator and label in (0, 1) else str(label)


def gallery_strips(tensors: dict[str, torch.Tensor], out: Path, prefix: str,
                   discriminator: bool = False) -> list[tuple[int, list[Picture]]]:
    """Write one strip per stored sample: clean, amplified perturbation, adversarial.

    Args:
        tensors: a stored gallery (see :mod:`advbench.engine.gallery`). out: the site directory.
        prefix: the numbered file prefix under ``out`` (``"img/g3"``).
    Returns:
        (true label, [clean, perturbation, adversarial] pictures) per sample.
    """
    strips = []
    for i in range(int(tensors["sample_id"].numel())):
        clean, adv = tensors["clean"][i], tensors["adv"][i]
        delta = adv - clean
        scale = float(delta.abs().max())
        amplify = 0.5 / scale if scale > 0 else 1.0  # the largest change fills half the grey range
        base = f"{prefix}-{i}"
        write_png(out / f"{base}-clean.png", clean)
        write_png(out / f"{base}-delta.png", 0.5 + amplify * delta)
        write_png(out / f"{base}-adv.png", adv)
        label = int(tensors["label"][i])

        def shown(pred: str, conf: str, i: int = i) -> str:
            return f"{class_name(int(tensors[pred][i]), discriminator)} ({100 * float(tensors[conf][i]):.0f}%)"

        strips.append((label, [
            Picture(f"{base}-clean.png", f"clean: {shown('clean_pred', 'clean_conf')}"),
            Picture(f"{base}-delta.png", f"perturbation x{amplify:.0f}"),
            Picture(f"{base}-adv.png", f"adversarial: {shown('adv_pred', 'adv_conf')}"),
        ]))
    return strips


def input_gradients(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d cross-entropy / d x [N, C, H, W] of ``module`` at ``x`` [N, C, H, W] with labels ``y`` [N] (CPU).

    A standard model's gradient looks like noise; an adversarially trained model's looks like the digit
    (Tsipras et al. 2019), which is what the saliency page shows side by side.
    """
    module.eval()
    x = x.clone().float().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(module(x).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad.detach()


def saliency_pictures(grads: torch.Tensor, out: Path, prefix: str) -> list[Picture]:
    """One PNG per sample: the channel-summed signed gradient on a blue-white-red scale, each image scaled to
    its own largest magnitude (only the shape matters, not the size)."""
    pictures = []
    for i, grad in enumerate(grads):
        summed = grad.sum(dim=0, keepdim=True)
        peak = float(summed.abs().max()) or 1.0
        write_png(out / f"{prefix}-{i}.png", summed / peak, cmap="bwr", vmin=-1.0, vmax=1.0)
        pictures.append(Picture(f"{prefix}-{i}.png", ""))
    return pictures


def saliency_inputs(manifest: dict[str, Any], sample_ids: list[int], host) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's first samples (x [n, C, H, W], y [n]) reloaded from its dataset, as the run selected them."""
    config = manifest.get("config", {})
    spec = host.dataset_spec(config["dataset"], config.get("dataset_options") or None)
    options = config.get("dataset_options") or {}
    x, y = spec.load(config.get("split", "test"), **options) if options else spec.load(config.get("split", "test"))
    index = torch.tensor(sample_ids, dtype=torch.int64)
    return x[index], y[index]


__all__ = ["Picture", "class_name", "gallery_strips", "input_gradients", "saliency_inputs", "saliency_pictures",
           "write_png"]
