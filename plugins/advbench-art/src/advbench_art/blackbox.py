"""ART's score- and decision-based attacks as advbench attacks.

Score attacks see the harness's score oracle: log-probabilities (their differences are the logit margins ART's
Square and ZOO losses read), or probabilities for the attacks that check for them (SimBA, VAT). Decision
attacks see one-hot labels. ART runs the decision attacks and SimBA one sample at a time from random starting
images; here each sample runs against a face of its own (:meth:`~advbench_art.base.ArtAttack.per_sample`).
Options take advbench's names where advbench has the hyperparameter, with ART's defaults.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from advbench.options import option

from .base import ArtAttack, art_module, norm_order, random_start, to_numpy


@dataclass
class Square(ArtAttack):
    """``art.square``: ART's SquareAttack at the cell's eps (untargeted: ART's criterion is any wrong label)."""

    name = "art.square"

    max_queries: int = option(100, ge=1, help="iterations, one query each per sample (ART's max_iter)")
    p_init: float = option(0.8, gt=0, le=1, help="initial fraction of the image a square covers")
    restarts: int = option(1, ge=1, help="runs (ART's nb_restarts)")

    def expected_queries(self, threat) -> int:
        return self.max_queries * self.restarts

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")
        attack = evasion.SquareAttack(self.estimator(model, x), norm=norm_order(threat.norm), max_iter=self.max_queries,
                                      eps=threat.eps, p_init=self.p_init, nb_restarts=self.restarts,
                                      batch_size=x.shape[0], verbose=False)
        return attack.generate(to_numpy(x), self.labels(goal, model.num_classes))


@dataclass
class SimBA(ArtAttack):
    """``art.simba``: ART's SimBA, per sample. ART does not bound the perturbation: its ``epsilon`` is the size
    of each step; the harness projects the result into the cell's ball."""

    name = "art.simba"
    wants_probabilities = True

    steps: int = option(3000, ge=1, help="directions tried, one or two queries each (ART's max_iter)")
    basis: str = option("dct", choices=("dct", "pixel"), help="search directions (ART's attack: dct or px)")
    step_size: float = option(0.1, gt=0, help="size of each step (ART's epsilon)")
    freq_dims: int = option(4, ge=1, help="dct: side of the low-frequency block (ART's freq_dim)")
    stride: int = option(1, ge=1, help="dct: stride of the frequency order")
    order: str = option("random", choices=("random", "diag"), help="order of the directions")

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")

        def generate(estimator, x_i, y_i, i):
            attack = evasion.SimBA(estimator, attack="px" if self.basis == "pixel" else "dct", max_iter=self.steps,
                                   order=self.order, epsilon=self.step_size, freq_dim=self.freq_dims,
                                   stride=self.stride, targeted=goal.targeted, batch_size=1, verbose=False)
            return attack.generate(x_i, y_i)

        return self.per_sample(model, x, goal, generate)


@dataclass
class ZOO(ArtAttack):
    """``art.zoo``: ART's ZooAttack, minimum-norm (unbounded; the harness derives every eps)."""

    name = "art.zoo"
    contract_options: ClassVar[dict] = {"nb_parallel": 8, "use_resize": False}

    confidence: float = option(0.0, ge=0, help="kappa, the margin an adversarial must reach")
    lr: float = option(0.01, gt=0, help="coordinate Adam's learning rate (ART's learning_rate)")
    steps: int = option(10, ge=1, help="iterations per search step (ART's max_iter)")
    binary_search_steps: int = option(1, ge=1, help="binary-search steps over c")
    c_init: float = option(1e-3, gt=0, help="first c (ART's initial_const)")
    abort_early: bool = option(True, help="stop once the loss stalls")
    use_resize: bool = option(True, help="attack a 32x32 (then larger) resized image first")
    use_importance: bool = option(True, help="sample coordinates by importance")
    nb_parallel: int = option(128, ge=1, help="coordinates estimated per iteration (two queries each)")
    variable_h: float = option(1e-4, gt=0, help="finite-difference step")

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")

        # per sample, as ART's default batch_size=1 runs it (ART's no-resize path fails on larger batches)
        def generate(estimator, x_i, y_i, i):
            attack = evasion.ZooAttack(
                estimator, confidence=self.confidence, targeted=goal.targeted, learning_rate=self.lr,
                max_iter=self.steps, binary_search_steps=self.binary_search_steps, initial_const=self.c_init,
                abort_early=self.abort_early, use_resize=self.use_resize, use_importance=self.use_importance,
                nb_parallel=self.nb_parallel, batch_size=1, variable_h=self.variable_h, verbose=False)
            return attack.generate(x_i, y_i)

        return self.per_sample(model, x, goal, generate)


@dataclass
class VirtualAdversarial(ArtAttack):
    """``art.virtual_adversarial``: ART's VirtualAdversarialMethod, an L2 step of eps along the direction that
    changes the scores most (power iteration on finite differences; labels unused)."""

    name = "art.virtual_adversarial"
    contract_options: ClassVar[dict] = {"steps": 1}
    wants_probabilities = True

    steps: int = option(10, ge=1, help="power iterations (ART's max_iter)")
    finite_diff: float = option(1e-6, gt=0, help="finite-difference step")

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")
        attack = evasion.VirtualAdversarialMethod(self.estimator(model, x), max_iter=self.steps,
                                                  finite_diff=self.finite_diff, eps=threat.eps,
                                                  batch_size=x.shape[0], verbose=False)
        return attack.generate(to_numpy(x))


@dataclass
class HopSkipJump(ArtAttack):
    """``art.hopskipjump``: ART's HopSkipJump per sample, minimum-norm (l2 or linf). Its random starting image
    is drawn as ART draws it, but from the seeded global RNG (:func:`~advbench_art.base.random_start`)."""

    name = "art.hopskipjump"
    contract_options: ClassVar[dict] = {"init_evals": 10, "max_evals": 20}

    steps: int = option(50, ge=1, help="iterations (ART's max_iter)")
    max_evals: int = option(10000, ge=1, help="cap on the probes of one gradient estimate (ART's max_eval)")
    init_evals: int = option(100, ge=1, help="gradient-estimation probes at iteration 1 (ART's init_eval)")
    init_attempts: int = option(100, ge=1, help="random draws to find a starting point (ART's init_size)")
    batch_size: int = option(64, ge=1, help="probes per model call (speed only)")

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")

        def generate(estimator, x_i, y_i, i):
            attack = evasion.HopSkipJump(estimator, batch_size=self.batch_size, targeted=goal.targeted,
                                         norm=norm_order(threat.norm), max_iter=self.steps, max_eval=self.max_evals,
                                         init_eval=self.init_evals, init_size=self.init_attempts, verbose=False)
            start = random_start(estimator, x_i, y_i, goal.targeted, self.init_attempts)
            return x_i if start is None else attack.generate(x_i, y_i, x_adv_init=start)

        return self.per_sample(model, x, goal, generate)


@dataclass
class Boundary(ArtAttack):
    """``art.boundary``: ART's BoundaryAttack per sample, minimum L2 (seeded start as for ``art.hopskipjump``)."""

    name = "art.boundary"
    contract_options: ClassVar[dict] = {"num_trial": 5, "sample_size": 5}

    steps: int = option(5000, ge=1, help="iterations (ART's max_iter)")
    spherical_step: float = option(0.01, gt=0, help="initial orthogonal step (ART's delta)")
    source_step: float = option(0.01, gt=0, help="initial step towards x (ART's epsilon)")
    step_adapt: float = option(0.667, gt=0, lt=1, help="factor by which both steps adapt")
    num_trial: int = option(25, ge=1, help="trials per iteration")
    sample_size: int = option(20, ge=1, help="samples per trial")
    init_attempts: int = option(100, ge=1, help="random draws to find a starting point (ART's init_size)")
    min_epsilon: float = option(0.0, ge=0, help="stop once the step towards x falls below this")
    batch_size: int = option(64, ge=1, help="candidates per model call (speed only)")

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")

        def generate(estimator, x_i, y_i, i):
            attack = evasion.BoundaryAttack(
                estimator, batch_size=self.batch_size, targeted=goal.targeted, delta=self.spherical_step,
                epsilon=self.source_step, step_adapt=self.step_adapt, max_iter=self.steps, num_trial=self.num_trial,
                sample_size=self.sample_size, init_size=self.init_attempts, min_epsilon=self.min_epsilon, verbose=False)
            start = random_start(estimator, x_i, y_i, goal.targeted, self.init_attempts)
            return x_i if start is None else attack.generate(x_i, y_i, x_adv_init=start)

        return self.per_sample(model, x, goal, generate)


@dataclass
class SignOPT(ArtAttack):
    """``art.sign_opt``: ART's SignOPTAttack per sample, minimum L2. Targeted runs start from a batch image the
    model puts in the target class (ART's ``x_init`` pool is the batch); a sample with none stays at x."""

    name = "art.sign_opt"
    contract_options: ClassVar[dict] = {"num_trial": 5, "k": 10}

    max_queries: int = option(20000, ge=1, help="queries per sample (ART's query_limit)")
    steps: int = option(1000, ge=1, help="iterations (ART's max_iter)")
    k: int = option(200, ge=1, help="random directions per sign-gradient estimate")
    num_trial: int = option(100, ge=1, help="random directions tried to initialise")
    alpha: float = option(0.2, gt=0, help="step size")
    beta: float = option(0.001, gt=0, help="smoothing of the gradient estimate")
    epsilon: float = option(0.001, gt=0, help="tolerance of the fine binary search")
    batch_size: int = option(64, ge=1, help="points per model call (speed only)")

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")
        pool = to_numpy(x)

        def generate(estimator, x_i, y_i, i):
            attack = evasion.SignOPTAttack(estimator, targeted=goal.targeted, epsilon=self.epsilon,
                                           num_trial=self.num_trial, max_iter=self.steps, query_limit=self.max_queries,
                                           k=self.k, alpha=self.alpha, beta=self.beta, batch_size=self.batch_size,
                                           verbose=False)
            return attack.generate(x_i, np.argmax(y_i, axis=1), x_init=pool if goal.targeted else None)

        return self.per_sample(model, x, goal, generate)


@contextmanager
def numpy_mat() -> Iterator[None]:
    """``np.mat`` while ART's GeoDA runs: ART 1.20.1 builds its DCT basis with ``np.mat``, which NumPy 2.0
    removed; NumPy 1.x defined it as exactly ``np.asmatrix``. Restored (removed again) afterwards."""
    had = "mat" in vars(np)
    if not had:
        np.mat = np.asmatrix
    try:
        yield
    finally:
        if not had:
            del np.mat


def cache_dir() -> Path:
    """Where this plugin keeps files ART would write into the working directory: ``$XDG_CACHE_HOME/advbench/art``
    (``~/.cache/advbench/art``), the convention of advbench's user zoo and data directories."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "advbench" / "art"


class _Under:
    """A module (``os``, ``os.path`` or ``numpy``) whose file functions see relative paths under ``root``:
    ``exists``, ``load`` and ``save``; every other attribute is the module's own."""

    def __init__(self, module: Any, root: Path) -> None:
        self._module, self._root = module, root

    def __getattr__(self, name: str) -> Any:
        if name == "path":  # os.path, itself redirected
            return _Under(self._module.path, self._root)
        return getattr(self._module, name)

    def exists(self, path: str) -> bool:
        return self._module.exists(self._root / path)

    def load(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return self._module.load(self._root / path, *args, **kwargs)

    def save(self, path: str, array: Any, *args: Any, **kwargs: Any) -> None:
        # Written aside, then renamed: another process loading the basis never reads half a file.
        final = self._root / path
        part = final.with_name(f"{final.name}.{os.getpid()}.part")
        with open(part, "wb") as f:
            self._module.save(f, array, *args, **kwargs)
        os.replace(part, final)


@contextmanager
def geoda_files_in_cache() -> Iterator[None]:
    """While ART's GeoDA runs, its DCT basis file (``2d_dct_basis_<sub_dim>_<size>.npy``, which ART 1.20.1 reads
    and writes relative to the working directory) lives in :func:`cache_dir` instead: ART's module sees ``os`` and
    ``np`` through :class:`_Under` (only that module; restored afterwards), never the user's cwd."""
    module = art_module("attacks.evasion.geometric_decision_based_attack")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    real = module.os, module.np
    module.os, module.np = _Under(real[0], root), _Under(real[1], root)
    try:
        yield
    finally:
        module.os, module.np = real


#: ART's GeoDA splits max_iter into round(max_iter / 500) iterations and fails with none.
GEODA_MIN_QUERIES = 300


@dataclass
class GeoDA(ArtAttack):
    """``art.geoda``: ART's GeoDA per sample, minimum-norm (l2 or linf), untargeted."""

    name = "art.geoda"
    contract_options: ClassVar[dict] = {"max_queries": GEODA_MIN_QUERIES}

    max_queries: int = option(4000, ge=1, help="queries per sample (ART's max_iter)")
    sub_dim: int = option(10, ge=1, help="side of the low-frequency DCT subspace")
    bin_search_tol: float = option(0.1, gt=0, help="binary-search tolerance")
    lambda_param: float = option(0.6, gt=0, help="how queries are spread over iterations")
    sigma: float = option(0.0002, gt=0, help="variance of the probing noise")
    batch_size: int = option(64, ge=1, help="probes per model call (speed only)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_queries < GEODA_MIN_QUERIES:  # ART plans its schedule in blocks of 500 and fails below this
            raise self.invalid_option("max_queries", f">= {GEODA_MIN_QUERIES} (ART's GeoDA query schedule)")

    def craft(self, model, x, goal, threat):
        evasion = art_module("attacks.evasion")

        def generate(estimator, x_i, y_i, i):
            attack = evasion.GeoDA(estimator, batch_size=self.batch_size, norm=norm_order(threat.norm),
                                   sub_dim=self.sub_dim, max_iter=self.max_queries,
                                   bin_search_tol=self.bin_search_tol, lambda_param=self.lambda_param,
                                   sigma=self.sigma, verbose=False)
            with numpy_mat(), geoda_files_in_cache():
                return attack.generate(x_i, y_i)

        return self.per_sample(model, x, goal, generate)


__all__ = ["Boundary", "GeoDA", "cache_dir", "HopSkipJump", "SignOPT", "SimBA", "Square", "VirtualAdversarial", "ZOO"]
