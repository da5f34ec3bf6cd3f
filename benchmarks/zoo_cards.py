"""Check that every shipped model card's robust accuracy is what ``advbench run`` measures today (issue 10).

A card records ``robust_accuracy`` and the ``advbench run`` command that reproduces it (``robust_eval``). Cards
drift when an attack's defaults change after training (a new PGD option) or when a model is trained under one
name and shipped under another (a cell's seed depends on the model's name). This script re-measures each card
through the same function training uses (:func:`advbench.train.evaluate.card_robust_accuracy`, the engine's
cell path), prints card against run, and with ``--write`` rewrites the drifted cards' ``robust_accuracy`` and
``robust_eval`` (the weights and their sha256 are untouched).

    python benchmarks/zoo_cards.py                 # check, exit 1 if any card drifted
    python benchmarks/zoo_cards.py --write         # and fix the cards
    python benchmarks/zoo_cards.py --only cnn.mnist5k_vat

One torch thread (set below) so the numbers do not depend on how many cores are free.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the cards that drifted")
    parser.add_argument("--only", default="", help="comma-separated model names (default: every card)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from advbench.models.zoo import ZOO_DIR, zoo_specs
    from advbench.plugins import get_host
    from advbench.threat import Norm
    from advbench.train.evaluate import card_robust_accuracy

    host = get_host()
    only = {n for n in args.only.split(",") if n}
    drifted = 0
    print(f"{'model':32} {'card':>7} {'run':>7}  command")
    for spec in sorted(zoo_specs(), key=lambda s: s.name):
        card, path = spec.card, ZOO_DIR / f"{spec.name}.json"
        record = card.get("robust_eval")
        if not record or (only and spec.name not in only):
            continue
        data = host.dataset_spec(card["dataset"])  # plugin datasets too (the GAN discriminator's real/fake set)
        x, y = data.load(card.get("eval_split", record["split"]))
        robust, fresh = card_robust_accuracy(spec.load(device="cpu"), spec.name, card["dataset"], x, y,
                                             eps=float(record["eps"]), norm=Norm(record["norm"]),
                                             steps=int(record["steps"]), num_classes=data.num_classes)
        same = round(robust, 6) == round(float(card["robust_accuracy"]), 6) and fresh == record
        drifted += not same
        mark = "" if same else "  <- drifted" + (" (record)" if robust == card["robust_accuracy"] else "")
        print(f"{spec.name:32} {100 * card['robust_accuracy']:6.1f}% {100 * robust:6.1f}%  {fresh['command']}{mark}")
        if not same and args.write:
            card = json.loads(path.read_text())
            card["robust_accuracy"], card["robust_eval"] = round(robust, 6), fresh
            path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{drifted} card(s) drifted" + (" (rewritten)" if args.write and drifted else ""))
    return 1 if drifted and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
