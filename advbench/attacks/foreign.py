"""Other libraries' attacks under advbench's contract: the model they see is a harness oracle.

torchattacks, Foolbox, ART and adv-lib all attack a ``torch.nn.Module`` (or a wrapper around one). An adapter
plugin hands them an :class:`OracleModule` instead of the model: every forward pass goes through the oracle
the harness gave the attack, so

- the library sees exactly the access its attack declared: differentiable logits for a gradient attack,
  log-probabilities for a score attack (their differences are the logit margins, so CE and margin losses are
  unchanged), one-hot scores for a decision attack (only the argmax means anything);
- every query is counted against the sample it was made for, and a hard ``--queries`` budget stops the
  library's loop (the oracle raises, the harness keeps each sample's best in-budget adversarial);
- whatever the library returns is validated, projected into the ball and [0, 1] and re-judged by the harness
  like any advbench attack's output.

Which sample a query row belongs to: libraries pass the whole batch in order (row ``i`` is sample ``i``), or a
subset of it (the samples still robust), possibly repeated (an estimate over several draws). A call with as
many rows as the batch is taken in order; any other call charges each row to the sample whose clean input is
nearest in L2 (an adversarial lies in its sample's small ball, far closer to it than to any other image).
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

import numpy as np
import torch

from .base import Attack, Goal

if TYPE_CHECKING:  # pragma: no cover
    from ..oracles import Oracle
    from ..threat import ThreatModel

#: The largest (query rows x batch) distance matrix computed at once when attributing rows to samples.
_ATTRIBUTION_CHUNK = 1 << 22


class OracleModule(torch.nn.Module):
    """A ``torch.nn.Module`` face of a harness oracle, for another library's attack code.

    ``forward(x [N, C, H, W]) -> [N, K]``: differentiable logits (gradient oracle), detached log-probabilities
    (score oracle) or detached one-hot scores (label oracle). Inputs are in [0, 1], as the harness's are.

    Args:
        oracle: the oracle the harness handed the adapter's :meth:`Attack.run`.
        x: the batch's clean inputs [B, C, H, W] (to attribute query rows to samples).
    """

    def __init__(self, oracle: "Oracle", x: torch.Tensor) -> None:
        super().__init__()
        self.oracle = oracle
        self.access = oracle.access
        self.num_classes = oracle.num_classes
        self._clean = x.detach().flatten(1)
        self._clean_sq = self._clean.pow(2).sum(dim=1)
        # Libraries find the device from the first parameter (torchattacks, ART): one empty, frozen parameter.
        self.device_probe = torch.nn.Parameter(torch.zeros(0, device=x.device, dtype=x.dtype), requires_grad=False)
        self.eval()

    def rows_to_samples(self, x: torch.Tensor) -> torch.Tensor:
        """int64 [N]: the batch position each query row is charged to (see the module docstring)."""
        n, batch = x.shape[0], self._clean.shape[0]
        if n == batch:
            return torch.arange(n, device=self._clean.device)
        flat = x.detach().flatten(1).to(self._clean)
        chunk = max(1, _ATTRIBUTION_CHUNK // max(batch, 1))
        nearest = []
        for start in range(0, n, chunk):
            part = flat[start:start + chunk]
            # squared L2 up to the row's own constant: |c|^2 - 2 c.x (a matrix product, no [N, B, D] tensor)
            dist = self._clean_sq[None, :] - 2.0 * part @ self._clean.T
            nearest.append(dist.argmin(dim=1))
        return torch.cat(nearest) if nearest else torch.zeros(0, dtype=torch.int64, device=self._clean.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, K] scores for query rows ``x`` [N, C, H, W] (counted on the oracle; see the class docstring)."""
        x = x.to(device=self._clean.device, dtype=self._clean.dtype)
        index = self.rows_to_samples(x)
        if self.access == "gradient":
            return self.oracle(x, index)
        if self.access == "score":
            return self.oracle(x, index).clamp_min(1e-30).log()
        labels = self.oracle(x, index)
        return torch.nn.functional.one_hot(labels, self.num_classes).to(x.dtype)


def library_import(module: str, distribution: str, plugin: str) -> Any:
    """Import another library's module, or raise one line saying how to install it.

    Args:
        module: the import name (``torchattacks``). distribution: what pip installs (``torchattacks==3.5.1``).
        plugin: the adapter plugin's distribution name, for the message.
    """
    from importlib import import_module

    from ..errors import AttackError

    try:
        return import_module(module)
    except ImportError as exc:
        raise AttackError(f"{plugin} needs {module} ({exc}); install it with: python -m pip install "
                          f"{distribution}") from None


@contextmanager
def library_rng(generator: torch.Generator, device: torch.device) -> Iterator[None]:
    """Seed the global RNGs (torch's CPU and ``device`` generators, NumPy's, ``random``) from one draw of the
    harness's ``generator`` while a library's attack runs, and restore the caller's states after.

    Libraries draw their random starts from the global RNGs; seeding them from the attack's generator makes a
    foreign attack reproducible with the same generator (the contract), whether or not a run seeded them.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@dataclass
class ForeignAttack(Attack):
    """Base class of an adapter: one attack of another library, run against an :class:`OracleModule`.

    Subclasses set the usual class attributes (``name`` with the library's prefix, ``access``, ``norms``,
    ``supports_targeted``...) plus ``library`` (the library's name, for the cross-library table) and
    ``algorithm`` (the algorithm it implements, shared with advbench's own attack of that algorithm, e.g.
    ``pgd``), and implement :meth:`craft`. The global RNGs (torch, NumPy, ``random``) are seeded from the
    attack's generator while :meth:`craft` runs (:func:`library_rng`), so a library that draws from them gives
    the same rows for the same generator.
    """

    library: ClassVar[str] = ""
    algorithm: ClassVar[str] = ""

    def run(self, oracle: "Oracle", x: torch.Tensor, goal: Goal, threat: "ThreatModel",
            generator: torch.Generator) -> torch.Tensor:
        model = OracleModule(oracle, x)
        with library_rng(generator, x.device):
            x_adv = self.craft(model, x, goal, threat)
        if not isinstance(x_adv, torch.Tensor):  # NumPy from ART; anything else fails the harness's check
            x_adv = torch.as_tensor(x_adv)
        return x_adv.to(device=x.device, dtype=x.dtype).detach()

    def craft(self, model: OracleModule, x: torch.Tensor, goal: Goal, threat: "ThreatModel") -> Any:
        """Run the library's attack on ``model`` for clean inputs ``x`` [B, C, H, W]; return [B, C, H, W]
        adversarials (a tensor or a NumPy array). ``goal.targets`` is set for a targeted run."""
        raise NotImplementedError(f"{type(self).__name__}.craft")


__all__ = ["OracleModule", "ForeignAttack", "library_import", "library_rng"]
