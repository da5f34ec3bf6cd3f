"""The picture pages: adversarial galleries, the GAN discriminator's mistakes, input-gradient saliency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..results import Runs, load_gallery
from .html import h, heading, paragraph
from .images import Picture, gallery_strips, input_gradients, saliency_inputs, saliency_pictures, write_png
from .site import Section

#: Models whose saliency is drawn (the first ones of the merged rows; each is loaded once on the CPU).
SALIENCY_MODELS = 6
#: Samples in the saliency table.
SALIENCY_SAMPLES = 4


def _img(p: Picture, alt: str) -> str:
    return f'<img src="{h(p.src)}" alt="{h(alt)}" title="{h(p.caption)}">'


def _strip(pictures: list[Picture], model: str, attack: str) -> str:
    images = "".join(f"<div>{_img(p, f'{model} {attack} {p.caption}')}</div>" for p in pictures)
    captions = "".join(f"<div>{h(p.caption)}</div>" for p in pictures)
    return f'<div class="strip">{images}{captions}</div>'


def _discriminators(runs: Runs) -> set[str]:
    """Models whose card names a generator: GAN discriminators (0 = fake, 1 = real)."""
    found = set()
    for manifest in runs.manifests.values():
        for name, meta in (manifest.get("models") or {}).items():
            card = meta.get("card") if isinstance(meta, dict) else None
            if isinstance(card, dict) and "generator" in card:
                found.add(str(name))
    return found


def galleries(runs: Runs, out: Path) -> tuple[Section | None, Section | None]:
    """The gallery page (every model and attack) and the GAN page (discriminators only), from stored galleries."""
    merged = {str(m) for m in runs.rows["model"].unique()} if len(runs.rows) else set()
    disc = _discriminators(runs)
    blocks, gan_blocks, seen, n = [], [], set(), 0
    for path in runs.names.values():
        for cell, tensors in load_gallery(path):
            key = (str(cell["model"]), str(cell["attack"]), str(cell["norm"]))
            if key in seen or key[0] not in merged:
                continue  # the first run's gallery of a cell shown once (the merge keeps that run's rows)
            seen.add(key)
            model, attack, norm = key
            strips = gallery_strips(tensors, out, f"img/g{n}", discriminator=model in disc)
            n += 1
            title = f"{model} / {attack} ({norm} eps={float(cell['eps']):g})"
            blocks.append(heading(3, title) + '<div class="strips">'
                          + "".join(_strip(p, model, attack) for _, p in strips) + "</div>")
            if model in disc:
                for label, what in ((1, "real images judged fake"), (0, "generated images judged real")):
                    chosen = [p for lab, p in strips if lab == label]
                    if chosen:
                        gan_blocks.append(heading(3, f"{model} / {attack}: {what}") + '<div class="strips">'
                                          + "".join(_strip(p, model, attack) for p in chosen) + "</div>")
    intro = paragraph("for each model and attack, at the run's largest eps: the first samples (by id) the attack "
                      "broke. clean image | perturbation (amplified to be visible) | adversarial image, each with "
                      "the predicted class and its confidence")
    gallery = Section("gallery.html", "Adversarial examples", intro + "\n".join(blocks)) if blocks else None
    gan_intro = paragraph("the discriminator classifies 1 = real (a test digit), 0 = fake (drawn by its generator); "
                          "a tiny perturbation flips its verdict")
    gan = Section("gan.html", "GAN discriminator", gan_intro + "\n".join(gan_blocks)) if gan_blocks else None
    return gallery, gan


def saliency(runs: Runs, out: Path, host: Any) -> tuple[Section | None, list[str]]:
    """Input gradients of every model (up to :data:`SALIENCY_MODELS`) on the run's first samples, side by side.

    Returns:
        (the page, or None when no model could be drawn; notes on models skipped and why).
    """
    from ..api.evaluate import load_model

    if not len(runs.rows):
        return None, []
    notes: list[str] = []
    first = next(iter(runs.manifests.values()))
    ids = sorted(int(i) for i in runs.rows["sample_id"].unique())[:SALIENCY_SAMPLES]
    try:
        x, y = saliency_inputs(first, ids, host)
    except Exception as exc:  # noqa: BLE001 - a dataset that cannot be reloaded leaves the page out, said why
        return None, [f"saliency left out: the run's dataset could not be reloaded ({exc})"]
    columns: list[tuple[str, list[Picture]]] = []
    for model in list(dict.fromkeys(str(m) for m in runs.rows["model"]))[:SALIENCY_MODELS]:
        try:
            grads = input_gradients(load_model(model, "cpu", host=host), x, y)
        except Exception as exc:  # noqa: BLE001 - a model that cannot load or take these inputs is skipped
            notes.append(f"saliency of {model} left out: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        columns.append((model, saliency_pictures(grads, out, f"img/s{len(columns)}")))
    if not columns:
        return None, notes
    inputs = []
    for i, image in enumerate(x):
        write_png(out / f"img/s-input-{i}.png", image)
        inputs.append(Picture(f"img/s-input-{i}.png", f"sample {ids[i]}"))
    head = "<tr><th>input</th>" + "".join(f"<th>{h(m)}</th>" for m, _ in columns) + "</tr>"
    rows = "".join("<tr><td>" + _img(inputs[i], "input") + "</td>"
                   + "".join(f"<td>{_img(p[i], f'saliency of {m}')}</td>" for m, p in columns) + "</tr>"
                   for i in range(len(ids)))
    intro = paragraph("gradient of the loss with respect to the input pixels (red: raising the pixel raises the "
                      "loss, blue: lowers it). A standard model's gradient looks like noise; an adversarially "
                      "trained model's looks like the digit")
    return Section("saliency.html", "Input-gradient saliency",
                   intro + f'<table class="saliency">{head}{rows}</table>'), notes


__all__ = ["galleries", "saliency"]
