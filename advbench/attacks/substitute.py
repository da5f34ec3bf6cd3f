"""The substitute-model attack (Papernot et al. 2017): learn a local copy of the target from its labels.

``fit`` trains a substitute network on points the target labels (label-only queries, counted), growing the
set with Jacobian-based dataset augmentation; ``run`` crafts adversarials on the substitute with a white-box
attack and hands them to the harness, which judges them on the target. The target is not queried in ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import AttackError, ConfigError
from ..options import option, parse_options
from ..oracles import make_oracle
from .base import Attack, Goal


@dataclass
class Substitute(Attack):
    """Practical black-box attack via a substitute model (Papernot et al. 2017), linf and l2.

    ``fit`` (once per target model; it does not depend on eps):

    1. take ``n_seed`` train images (a seeded random subset) and label them by querying the target;
    2. train the substitute (architecture ``arch``; Adam, ``epochs`` epochs) on the labelled set;
    3. for ``rho`` rounds: add, for every point x of the set, ``clip(x + lambda_r * sign(J_F(x)[O(x)]))``
       (the gradient of the substitute's logit for the target's label), label the new points with the
       target and keep training the substitute on the doubled set. ``lambda_r = lmbda * (-1)^floor(r/tau)``
       (the paper's periodic step size; ``tau=0`` keeps the sign fixed).

    The set grows to ``n_seed * 2^rho`` points, each labelled once by the target: ``n_seed * 2^rho`` queries
    in all (9,600 with the defaults). Each augmented point is charged to the seed image it derives from, so
    the fit oracle's counters stay per original train image. Weight initialisation and shuffling draw only on
    the ``generator``.

    ``run`` crafts with the registered gradient attack ``base`` (``fgsm``, or ``pgd``/``bim`` ...) on the
    trained substitute (kept on the instance as ``substitute``).

    Options:
        n_seed: initial substitute training points (150, as in the paper).
        rho: augmentation rounds (6).
        lmbda: augmentation step size lambda (0.1).
        tau: the sign of the step flips every ``tau`` rounds (3); 0 never flips.
        epochs: training epochs per round (10).
        batch_size, lr: substitute training (Adam).
        arch: substitute architecture for ``advbench.models.archs.build_arch`` (``cnn``, ``linear``, timm).
        base: the white-box attack run on the substitute.
        base_options: ``"steps=10;restarts=1"``, passed to the base attack.
    """

    name = "substitute"
    access = "label"
    norms = ("linf", "l2")
    needs_fit = True
    fit_per_eps = False
    wants_context = True
    uses_surrogate = True  # crafts on its own trained substitute
    description = "Substitute model trained on the target's labels with Jacobian augmentation, then FGSM/PGD on it"
    reference = ("Papernot, McDaniel, Goodfellow, Jha, Celik, Swami. Practical Black-Box Attacks against "
                 "Machine Learning. AsiaCCS 2017")

    n_seed: int = option(150, ge=1, help="initial substitute training points (150 in the paper)")
    rho: int = option(6, ge=0, help="Jacobian augmentation rounds")
    lmbda: float = option(0.1, gt=0, help="augmentation step size lambda")
    tau: int = option(3, ge=0, help="the augmentation step's sign flips every tau rounds; 0 never")
    epochs: int = option(10, ge=1, help="substitute training epochs per round")
    batch_size: int = option(128, ge=1, help="substitute training batch size")
    lr: float = option(1e-3, gt=0, help="substitute training learning rate (Adam)")
    arch: str = option("cnn", help="substitute architecture (cnn, linear, or a timm name)")
    base: str = option("fgsm", help="the fixed-eps white-box attack run on the substitute")
    base_options: str = option("", help="options of the base attack, KEY=VALUE;KEY=VALUE")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_options(self.base_options, what="substitute base_options item", example="steps=10")
        #: the trained substitute (a frozen ClassifierWrapper), set by fit; not an option
        self.substitute: torch.nn.Module | None = None

    # -- fit -------------------------------------------------------------------------------------------
    def fit(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> None:
        """Train the substitute on target labels of ``n_seed`` images of ``x`` and their augmentations.

        Args:
            oracle: label access to the target over the batch ``x`` (counts per train image).
            x: train images [N, C, H, W] in [0, 1]; ``goal``'s true labels are not used (the target's are).
        """
        from ..models.archs import build_arch
        from ..models.wrapper import ClassifierWrapper

        device = x.device
        n_seed = min(self.n_seed, x.shape[0])
        seed_pos = torch.randperm(x.shape[0], generator=generator, device=generator.device)[:n_seed].to(device)
        points = x[seed_pos].clone()
        parents = seed_pos  # batch position of the seed image each point derives from (for query counting)
        labels = self._label(oracle, points, parents)

        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        with torch.random.fork_rng(devices=[]):  # initialise the weights from the generator only
            torch.manual_seed(seed)
            net = build_arch(self.arch, tuple(x.shape[1:]), oracle.num_classes)
        net = net.to(device)
        optimiser = torch.optim.Adam(net.parameters(), lr=self.lr)
        self._train(net, optimiser, points, labels, generator)
        for r in range(self.rho):
            sign = -1.0 if self.tau and (r // self.tau) % 2 == 1 else 1.0
            new = (points + sign * self.lmbda * self._jacobian_sign(net, points, labels)).clamp(0.0, 1.0)
            new_labels = self._label(oracle, new, parents)
            points = torch.cat([points, new])
            labels = torch.cat([labels, new_labels])
            parents = torch.cat([parents, parents])
            self._train(net, optimiser, points, labels, generator)
        self.substitute = ClassifierWrapper(net, input_shape=tuple(x.shape[1:]), num_classes=oracle.num_classes)

    @staticmethod
    def _label(oracle, points: torch.Tensor, parents: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Target labels int64 [N] of ``points`` [N, ...], one counted query each, charged to ``parents`` [N]."""
        return torch.cat([oracle(points[i : i + chunk], parents[i : i + chunk]) for i in range(0, points.shape[0], chunk)])

    def _train(self, net: torch.nn.Module, optimiser: torch.optim.Optimizer, points: torch.Tensor,
               labels: torch.Tensor, generator: torch.Generator) -> None:
        """``epochs`` epochs of cross-entropy on (points [N, ...], labels [N]), shuffled by the generator."""
        net.train()
        n = points.shape[0]
        with torch.enable_grad():
            for _ in range(self.epochs):
                order = torch.randperm(n, generator=generator, device=generator.device).to(points.device)
                for i in range(0, n, self.batch_size):
                    batch = order[i : i + self.batch_size]
                    loss = torch.nn.functional.cross_entropy(net(points[batch]), labels[batch])
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
        net.eval()

    @staticmethod
    def _jacobian_sign(net: torch.nn.Module, points: torch.Tensor, labels: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """sign of d logit_{label} / d x for every point: [N, C, H, W]."""
        out = []
        with torch.enable_grad():
            for i in range(0, points.shape[0], chunk):
                xp = points[i : i + chunk].detach().requires_grad_(True)
                logit = net(xp).gather(1, labels[i : i + chunk, None]).sum()
                (grad,) = torch.autograd.grad(logit, xp)
                out.append(grad.sign())
        return torch.cat(out)

    # -- run -------------------------------------------------------------------------------------------
    def bind(self, context) -> None:
        """Build the base attack through the run's registry now (a bad name fails before any cell runs)."""
        super().bind(context)
        if context is None:
            return
        spec = context.attack_spec(self.base)
        if spec.access != "gradient" or spec.minimum_norm or spec.uses_surrogate:
            raise ConfigError(f"substitute base attack must be a fixed-eps gradient attack, not {self.base!r}")
        options = parse_options(self.base_options, what="substitute base_options item", example="steps=10")
        self.__dict__["_base_attack"] = context.build_attack(self.base, options)

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """Craft on the substitute; the target oracle is not queried. x: [B, C, H, W] -> [B, C, H, W]."""
        if self.substitute is None:
            raise AttackError("attack 'substitute' must be fit() on a train split before run()")
        base = self.__dict__.get("_base_attack")
        if base is None:
            raise AttackError("attack 'substitute' was built without the run's context: build it through a run "
                              "or advbench.testing.build_attack")
        model = self.substitute.to(x.device)
        surrogate = make_oracle("gradient", model, x.shape[0], oracle.num_classes, x.device)
        return base.run(surrogate, x, goal, threat, generator)


__all__ = ["Substitute"]
