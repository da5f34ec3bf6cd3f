"""What the AutoAttack-standard ensemble's passes alone cost: the floor under benchmark (c)'s wall time.

    python benchmarks/pass_floor.py [--n-samples 200] [--precision fp32|bf16] [--out FILE]

Runs the ``ensemble`` (AutoAttack standard, 100-step members, Square 5,000 queries) on cnn.mnist5k_pgdat at linf
0.3 through the harness, as ``agreement_torchattacks.py --attacks autoattack`` does, and reads the passes it
made from the harness's per-sample counters: F forward passes, B of them followed by an input-gradient
backward. It then times one forward pass and one forward + backward pass per sample at batch 120 (about the
number of samples still robust after APGD-CE, so the batch most of the passes see) on the module advbench runs
and on the plain module, and prints

    floor = (F - B) x forward + B x (forward + backward)

for both, against the measured wall time. The floor is what the passes cost with no attack arithmetic at all
(FAB's projections, Square's proposals, APGD's step sizes): no implementation that makes the same passes on the
same model can be faster, so it bounds the ratio to another library's wall time from below.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import as_advbench_runs_it, spread_samples  # noqa: E402


def per_sample_seconds(model, x: torch.Tensor, backward: bool, repeats: int = 30) -> float:
    """Median seconds per sample of a forward (and an input-gradient backward) pass of ``model`` on ``x``."""
    times = []
    for r in range(repeats + 3):
        t0 = time.perf_counter()
        if backward:
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xg).float().sum(), xg)
        else:
            with torch.no_grad():
                model(x)
        if r >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / x.shape[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import advbench
    from advbench.engine.accel import autocast_forward
    from advbench.plugins import get_host
    from advbench.testing import build_attack
    from advbench.threat import Norm, ThreatModel

    plain = advbench.load_model("cnn.mnist5k_pgdat")
    module, _ = as_advbench_runs_it(plain, "cpu")
    x, y = spread_samples(args.n_samples, "cpu")
    with torch.no_grad():
        clean = module(x).float()
    ensemble = build_attack("ensemble", get_host(),
                            member_options="apgd_ce.steps=100;apgd_t.steps=100;fab_t.steps=100")
    from advbench.engine.harness import Harness

    t0 = time.perf_counter()
    verdict = Harness(module, 10, precision=args.precision).attack(
        ensemble, x, y, ThreatModel(Norm.LINF, 0.3), torch.Generator().manual_seed(0), clean_logits=clean)
    wall = time.perf_counter() - t0
    forward, backward = int(verdict.n_forward.sum()), int(verdict.n_backward.sum())
    batch = x[:120]
    lines = [f"# Pass floor of the AutoAttack-standard ensemble (cnn.mnist5k_pgdat, linf 0.3, {args.n_samples} samples, "
             f"{args.precision}, one thread)", "",
             f"passes counted by the harness: {forward} forward, {backward} of them with an input-gradient backward; "
             f"robust {100 * float((~verdict.success & (clean.argmax(1) == y)).float().mean()):.1f}%; "
             f"ensemble wall time {wall:.1f} s", "",
             "| module | forward per sample | forward + backward per sample | floor | wall / floor |", "|---|---|---|---|---|"]
    for name, model in (("advbench's (switched pools)", module), ("plain (torchattacks')", plain)):
        run = autocast_forward(model, torch.device("cpu")) if args.precision == "bf16" else model
        f = per_sample_seconds(run, batch, backward=False)
        fb = per_sample_seconds(run, batch, backward=True)
        floor = (forward - backward) * f + backward * fb
        ratio = f"{wall / floor:.2f}" if name.startswith("advbench") else "-"
        lines.append(f"| {name} | {f * 1e6:.1f} us | {fb * 1e6:.1f} us | {floor:.1f} s | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
