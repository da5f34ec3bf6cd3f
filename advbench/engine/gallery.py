"""The few images a published gallery shows, chosen when a cell is recorded (never every adversarial).

Per (model, attack, norm) only the cell at the run's largest eps keeps a gallery: the first :data:`PER_GROUP`
samples by sample id on which the attack met its goal. For a two-class dataset (a GAN discriminator: 0 =
fake, 1 = real) the first :data:`PER_GROUP` of each true label are kept, so that both "real judged fake" and
"generated judged real" can be shown. The choice depends on the rows alone, so it is deterministic.

Stored in ``RUN_DIR/gallery/<cell key>.safetensors``: ``sample_id`` int64 [k], ``label`` int64 [k], ``clean``
float32 [k, C, H, W] (the model's inputs), ``adv`` float32 [k, C, H, W], ``clean_pred``/``adv_pred`` int64 [k],
``clean_conf``/``adv_conf`` float32 [k] (softmax probability of the predicted class).
"""

from __future__ import annotations

import pandas as pd
import torch

#: Samples kept per cell (per true label on a two-class dataset).
PER_GROUP = 6


def gallery_indices(rows: pd.DataFrame, per_group: int = PER_GROUP) -> list[int]:
    """Positions (into ``rows`` and the cell's inputs) of the samples a gallery keeps, in sample-id order.

    Args:
        rows: one cell's rows, one row per sample, in input order.
    """
    won = rows[rows["success"].astype(bool)].sort_values("sample_id", kind="stable")
    labels = sorted(set(rows["label"].astype(int))) if "label" in rows.columns else []
    if len(labels) == 2:  # a real/fake discriminator: both directions
        picked = pd.concat([won[won["label"] == lab].head(per_group) for lab in labels]).sort_values("sample_id")
    else:
        picked = won.head(per_group)
    positions = pd.Series(range(len(rows)), index=rows.index)
    return positions.loc[picked.index].tolist()


def gallery_tensors(rows: pd.DataFrame, x: torch.Tensor, x_adv: torch.Tensor,
                    clean_logits: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """The tensors of one cell's gallery (module doc), or ``None`` when nothing succeeded or the rows do not
    line up one per input sample.

    Args:
        rows: the cell's rows. x, x_adv: [n, C, H, W]. clean_logits: [n, K].
    """
    if len(rows) != x.shape[0] or x_adv is None or x_adv.shape != x.shape:
        return None
    idx = gallery_indices(rows)
    if not idx:
        return None
    pos = torch.tensor(idx, dtype=torch.int64)
    probs = clean_logits[pos].float().softmax(dim=1)
    picked = rows.iloc[idx]
    return {
        "sample_id": torch.tensor(picked["sample_id"].to_numpy(), dtype=torch.int64),
        "label": torch.tensor(picked["label"].to_numpy(), dtype=torch.int64),
        "clean": x[pos].float().contiguous(),
        "adv": x_adv[pos].float().contiguous(),
        "clean_pred": probs.argmax(dim=1),
        "clean_conf": probs.max(dim=1).values,
        "adv_pred": torch.tensor(picked["adv_pred"].to_numpy(), dtype=torch.int64),
        "adv_conf": torch.tensor(picked["adv_confidence"].to_numpy(), dtype=torch.float32),
    }


__all__ = ["PER_GROUP", "gallery_indices", "gallery_tensors"]
