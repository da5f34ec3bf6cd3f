"""``advbench`` commands. Thin: parse options, call the engine, render. Heavy imports happen inside
commands so that ``advbench --help`` and ``advbench list`` stay fast."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from .._version import __version__
from .hosts import host as _host
from .publishing import publish_cmd
from .errors import AdvbenchGroup

app = typer.Typer(
    cls=AdvbenchGroup,
    name="advbench",
    help="Robustness benchmarking for image classifiers: models x attacks x epsilons -> leaderboards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors.")]
Fmt = Annotated[str, typer.Option("--format", "-f", help="table (rich, default), csv, md or json (to stdout).")]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"advbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = None,
    disable_plugin: Annotated[
        Optional[list[str]], typer.Option("--disable-plugin", metavar="NAME",
                                          help="Do not load this entry-point plugin (repeatable; also $ADVBENCH_DISABLE_PLUGINS).")
    ] = None,
) -> None:
    """advbench: robustness benchmarking for image classifiers."""
    if disable_plugin:
        import os

        from ..plugins import DISABLE_ENV, set_host

        names = [n for v in disable_plugin for n in v.split(",") if n.strip()]
        current = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        os.environ[DISABLE_ENV] = ",".join(dict.fromkeys([*current, *names]))  # read when the host is built
        set_host(None)


@app.command()
def run(
    models: Annotated[Optional[str], typer.Option("--models", "-m", help="Comma-separated model names or globs (default: the shipped standard models of the dataset; plugin and user-zoo models only when named).")] = None,
    attacks: Annotated[str, typer.Option("--attacks", "-a", help="Comma-separated attack names.")] = "fgsm,pgd",
    eps: Annotated[str, typer.Option("--eps", "-e", help="Comma-separated budgets in [0, 1] pixel space: 0.3, 8/255.")] = "0.1,0.2,0.3",
    norm: Annotated[str, typer.Option("--norm", "-n", help="linf or l2.")] = "linf",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (see `advbench list datasets`).")] = "mnist-5k",
    split: Annotated[str, typer.Option("--split", help="Dataset split to evaluate on.")] = "test",
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Where a dataset's files live (mnist, cifar10, image folders).")] = None,
    n_samples: Annotated[Optional[int], typer.Option("--n-samples", help="Evaluate a seeded subset of this many samples (default: the whole split).")] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Samples per attack batch, or auto (500 on the CPU, 4096 on CUDA). On CUDA out-of-memory a cell is rerun with half the batch.")] = "500",
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu, cuda, cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seeds the sample subset and every attack's randomness.")] = 0,
    out: Annotated[Optional[str], typer.Option("--out", "-o", metavar="DIR", help="Run directory (default: runs/<timestamp>).")] = None,
    fmt: Fmt = "table",
    view: Annotated[Optional[str], typer.Option("--view", help="robust, success, transfer, min-norm or flags (default: all that apply in table format, robust otherwise).")] = None,
    attack_opt: Annotated[Optional[list[str]], typer.Option("--attack-opt", help="ATTACK.OPTION=VALUE, repeatable (e.g. pgd.steps=40).")] = None,
    transfer_attack: Annotated[Optional[str], typer.Option("--transfer-attack", help="White-box attack whose adversarials feed the transferability matrix (default: the strongest of the run).")] = None,
    surrogates: Annotated[Optional[str], typer.Option("--surrogates", help="Surrogate models for the 'transfer' attack (comma-separated).")] = None,
    weights: Annotated[Optional[list[str]], typer.Option("--weights", help="Local weights for a timm model: PATH, or MODEL=PATH with several models.")] = None,
    model_opt: Annotated[Optional[list[str]], typer.Option("--model-opt", help="KEY=VALUE for every model, or MODEL.KEY=VALUE (e.g. in_chans=1, num_classes=10, img_size=28).")] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Architecture of file:PATH models (a timm name, cnn or linear).")] = None,
    zoo: Annotated[Optional[list[Path]], typer.Option("--zoo", help="Extra model zoo directory (trained models with cards), repeatable.")] = None,
    save_adversarials: Annotated[bool, typer.Option("--save-adversarials/--no-save-adversarials", help="Write each cell's adversarial images to the run directory.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the cells of --out whose fingerprints match this run exactly; recompute the others (and say why).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out (without --resume or --overwrite a used --out is refused).")] = False,
    targeted: Annotated[Optional[str], typer.Option("--targeted", help="Targeted attacks: least-likely, random, or a class index.")] = None,
    min_confidence: Annotated[Optional[float], typer.Option("--min-confidence", help="Success also needs the adversarial (or target) class at this probability.")] = None,
    sanity_checks: Annotated[bool, typer.Option("--sanity-checks/--no-sanity-checks", help="Gradient-masking probes and flags.")] = True,
    queries: Annotated[Optional[int], typer.Option("--queries", help="Hard per-sample budget of forward queries for every attack.")] = None,
    isolate: Annotated[bool, typer.Option("--isolate", help="Run each cell's attack in a child process that sees only the oracle (for untrusted score- and label-based attacks; gradient attacks are refused).")] = False,
    cell_timeout: Annotated[Optional[float], typer.Option("--cell-timeout", help="Stop and fail a cell after SECONDS; the run goes on. Checked at every query in process (an attack looping without querying is stopped only with --isolate, which kills the child).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (cells, samples attacked, passes per sample) and its estimated wall time from a short calibration on the models and device; write nothing.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (this process) or ray (one Ray worker per model; pip install 'advbench[ray]').")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="With --executor ray: an existing cluster (auto = $RAY_ADDRESS or the one `ray start` runs here, HOST:6379, ray://HOST:10001); default: a local cluster for this run.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="With --executor ray: most models running at once (default: one per GPU for a CUDA run, else one per CPU).")] = None,
    carry: Annotated[bool, typer.Option("--carry/--no-carry", help="Eps carry-over: a sample a fixed-budget attack broke at a smaller eps is not attacked again at a larger one (its adversarial is re-judged there; rows say carried).")] = True,
    precision: Annotated[str, typer.Option("--precision", help="fp32, or bf16: autocast for the attacks' passes; every success is re-judged in fp32.")] = "fp32",
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model's forward (falls back with a warning where it fails).")] = False,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="Channels-last memory format for conv nets (default: the whole net on CUDA; on the CPU only its max pools, which is exact and faster; --no-channels-last: neither).", show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch's intra-op threads (default: OMP_NUM_THREADS, else the cores free now).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    verbose: Verbose = False,
) -> None:
    """Evaluate models x attacks x epsilons and print the leaderboard.

    With no options: the embedded default (mnist-5k test split, every shipped mnist-5k model, fgsm and pgd,
    linf eps 0.1, 0.2, 0.3).
    """
    from ..engine.executor import execute
    from ..engine.executors import choose_executor
    from .errors import writing_run
    from .render import RichReporter, check_view

    _check_format(fmt)
    check_view(view)
    runner = choose_executor(executor, address, workers)
    host = _host(zoo)
    config, out_dir = _run_config(
        host, models=models, attacks=attacks, surrogates=surrogates, eps=eps, norm=norm, dataset=dataset, split=split,
        data_dir=data_dir, n_samples=n_samples, batch_size=batch_size, device=device, seed=seed, out=out,
        attack_opt=attack_opt, model_opt=model_opt, arch=arch, weights=weights, save_adversarials=save_adversarials,
        resume=resume, overwrite=overwrite, targeted=targeted, min_confidence=min_confidence, sanity_checks=sanity_checks,
        queries=queries, transfer_attack=transfer_attack, isolate=isolate, cell_timeout=cell_timeout,
        carry=carry, precision=precision, compile=compile_, channels_last=channels_last, threads=threads,
    )
    if dry_run:
        from ..engine.estimate import estimate_run
        from .dryrun import print_estimate

        print_estimate(estimate_run(config, host), fmt, config)
        return
    reporter = RichReporter(quiet=quiet)
    with writing_run(out_dir, cleanup=reporter.run_finished):  # a full disk or Ctrl-C: one line, cells kept
        outcome = execute(config, host, reporter, executor=runner)
        _report_run(outcome, config, out_dir, fmt=fmt, view=view, always_success=min_confidence is not None,
                    quiet=quiet, verbose=verbose)


def _check_format(fmt: str) -> None:
    """Raise ConfigError unless ``fmt`` is one of the leaderboard formats."""
    from ..leaderboard.render import FORMATS

    if fmt not in FORMATS:
        from ..errors import ConfigError

        raise ConfigError(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")


def _run_config(host, *, models: str | None, attacks: str, surrogates: str | None, eps: str, dataset: str,
                data_dir: Path | None, out: str | None, attack_opt: list[str] | None, model_opt: list[str] | None,
                arch: str | None, weights: list[str] | None, **settings):
    """``advbench run``'s options -> (RunConfig, run directory). ``settings``: the options passed on unchanged.

    The dataset is checked first (an unknown dataset is the first thing to report); no ``--models`` means every
    shipped model of the dataset; no ``--out`` means ``runs/<timestamp>``.
    """
    from ..api import default_models
    from ..engine.config import build_run_config
    from .options import (
        expand_model_globs, merge_options, parse_attack_options, parse_model_options, parse_weights, split_names,
    )

    dataset_options = {"data_dir": str(data_dir)} if data_dir is not None else {}
    host.dataset_spec(dataset, dataset_options)  # an unknown dataset is the first thing to report
    model_names = (
        expand_model_globs(split_names(models, "models"), list(host.registry.models.specs))
        if models is not None else default_models(dataset, host)
    )
    out_dir = Path(out) if out is not None else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    config = build_run_config(
        model_names,
        split_names(attacks, "attacks"), eps, surrogates=split_names(surrogates, "models") if surrogates else (),
        dataset=dataset, attack_options=parse_attack_options(attack_opt),
        model_options=merge_options(parse_model_options(model_opt, model_names, arch), parse_weights(weights, model_names)),
        dataset_options=dataset_options, out=out if out is not None else out_dir, **settings,
    )
    return config, out_dir


def _report_run(outcome, config, out_dir: Path, *, fmt: str, view: str | None, always_success: bool, quiet: bool,
                verbose: bool) -> None:
    """Print a finished run's results and where they are; raise CellFailed / ConfigError when cells failed or none ran."""
    from ..errors import CellFailed
    from .render import note, show_results

    if len(outcome.rows):
        n = outcome.rows["sample_id"].nunique()
        show_results(outcome.rows, outcome.flags, outcome.transfer, fmt, f"{config.dataset}/{config.split}, {n} samples",
                     view=view, always_success=always_success, manifest=outcome.manifest)
    if outcome.resume is not None and not quiet:
        note(_resume_summary(outcome.resume))
    if not quiet:
        note(f"results: {out_dir}")
    if outcome.failures:
        for failure in outcome.failures:  # the one error: line comes last; these say what failed
            note(f"- {failure.message}")
            if verbose and failure.traceback:
                note(failure.traceback)
        if not outcome.plan.cells or not len(outcome.rows):
            raise CellFailed(outcome.failures[0].message)
        raise CellFailed(f"{sum(len(f.cells) for f in outcome.failures)} of {len(outcome.plan.cells)} cells failed; finished cells are in {out_dir}")
    if not outcome.plan.cells:
        from ..errors import ConfigError

        raise ConfigError("nothing to run: every model x attack cell was skipped (reasons above)")


def _resume_summary(log: dict) -> str:
    """``resume: reused 4 cells, recomputed 2 (pgd ...: attack options steps 2 -> 3)``."""
    redone = log["recomputed"]
    text = f"resume: reused {len(log['reused'])} cell(s), recomputed {len(redone)}"
    if redone:
        reasons: dict[str, list[str]] = {}
        for item in redone:
            reasons.setdefault(item["reason"], []).append(item["cell"])
        text += " (" + "; ".join(f"{cells[0]}{f' and {len(cells) - 1} more' if len(cells) > 1 else ''}: {reason}"
                                 for reason, cells in reasons.items()) + ")"
    return text


@app.command("list")
def list_(
    kind: Annotated[str, typer.Argument(help="models, attacks or datasets.")] = "models",
    pattern: Annotated[Optional[str], typer.Argument(help="Name filter: a glob (cnn.*) or a substring; an attack's exact name shows its options.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON to stdout.")] = False,
    zoo: Annotated[Optional[list[Path]], typer.Option("--zoo", help="Extra model zoo directory, repeatable.")] = None,
    verbose: Verbose = False,
) -> None:
    """List registered models, attacks or datasets; `list attacks NAME` shows one attack's options in full."""
    from ..errors import ConfigError
    from .render import listing_table, out_console

    kinds = {"models": "model", "attacks": "attack", "datasets": "dataset", "model": "model", "attack": "attack", "dataset": "dataset"}
    if kind not in kinds:
        raise ConfigError(f"unknown list kind {kind!r}: use models, attacks or datasets")
    table = _host(zoo).registry.table(kinds[kind])
    if kinds[kind] == "attack" and pattern is not None and pattern in table:
        from .describe import print_attack

        print_attack(table.get(pattern), as_json)  # one attack by its exact name: in full, options included
        return
    specs = table.match(pattern)
    records = [_spec_record(s) for s in specs]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    columns = list(records[0]) if records else ["name"]
    out_console().print(listing_table(f"{kinds[kind]}s" + (f" matching {pattern!r}" if pattern else ""), columns,
                                    ([r[c] for c in columns] for r in records)))


def _spec_record(spec) -> dict:
    from ..specs import AttackSpec, DatasetSpec

    if isinstance(spec, AttackSpec):
        return {"name": spec.name, "access": spec.access, "norms": ",".join(spec.norms), "plugin": spec.plugin, "description": spec.description}
    if isinstance(spec, DatasetSpec):
        return {"name": spec.name, "shape": "x".join(map(str, spec.input_shape)), "classes": spec.num_classes,
                "splits": ",".join(spec.splits), "plugin": spec.plugin, "description": spec.description}
    shape = "x".join("*" if v is None else str(v) for v in spec.input_shape) if spec.input_shape else "?"
    return {"name": spec.name, "dataset": spec.dataset or "", "shape": shape, "plugin": spec.plugin, "description": spec.description}


@app.command()
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="JSON to stdout.")] = False,
    verbose: Verbose = False,
) -> None:
    """Show every plugin advbench found, its version, its hooks, the error of any that failed, and names two
    plugins both register (conflicts)."""
    from ..plugins import get_host
    from .render import listing_table, out_console

    host = get_host()
    registry = host.registry  # build it so that failures inside register hooks are recorded too
    clashes: dict[str, list[str]] = {}
    for kind, name, owners in registry.conflicts():
        for owner in owners:
            clashes.setdefault(owner, []).append(f"{kind} {name!r} (also: {', '.join(o for o in owners if o != owner)})")
    records = [
        {"name": p.name, "source": p.source, "distribution": p.distribution, "version": p.version,
         "status": "disabled" if p.disabled else ("ok" if p.ok else "failed"),
         "hooks": ",".join(h.replace("advbench_", "") for h in p.hooks),
         "error": p.error or "", "conflicts": "; ".join(clashes.get(p.name, []))}
        for p in host.plugins
    ]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    for r in records:  # one hook per line keeps the table narrow
        r["hooks"] = r["hooks"].replace(",", "\n")
    out_console().print(listing_table("plugins", list(records[0]), ([r[c] for c in r] for r in records)))


@app.command("leaderboard")
def leaderboard_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (--out of `advbench run`); several are merged.")],
    fmt: Fmt = "table",
    view: Annotated[Optional[str], typer.Option("--view", help="robust, success, transfer, min-norm, flags or implementations.")] = None,
    compare_implementations: Annotated[bool, typer.Option("--compare-implementations", help="Set each algorithm's implementations (advbench's own and the adapter plugins' ta., fb., art., al.) side by side: the same as --view implementations.")] = False,
    verbose: Verbose = False,
) -> None:
    """Rebuild the leaderboard of one run, or of several merged (refused, naming the cells, when their samples
    or settings differ), from the rows on disk."""
    from .publishing import show_runs

    _check_format(fmt)
    if compare_implementations:
        from ..errors import ConfigError

        if view not in (None, "implementations"):
            raise ConfigError(f"--compare-implementations is --view implementations; drop --view {view}")
        view = "implementations"
    show_runs(run_dirs, fmt, view)


app.command("publish")(publish_cmd)


@app.command()
def train(
    name: Annotated[Optional[str], typer.Option("--name", help="Model name in arch.tag style, e.g. cnn.mnist5k_std (required unless --reproduce).")] = None,
    arch: Annotated[str, typer.Option("--arch", help="cnn, linear, or a timm architecture (e.g. test_resnet).")] = "cnn",
    arch_opt: Annotated[Optional[list[str]], typer.Option("--arch-opt", help="Architecture option KEY=VALUE, repeatable (cnn: width=32, hidden=1024; timm: its create_model keywords).")] = None,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset to train on (its train split).")] = "mnist-5k",
    recipe: Annotated[str, typer.Option("--recipe", help="std, fgsm-at, mixed-batch, pgd-at, vat, trades or gan.")] = "std",
    recipe_opt: Annotated[Optional[list[str]], typer.Option("--recipe-opt", help="Recipe option KEY=VALUE, repeatable (eps=0.3, steps=10, eval_eps=0.3, g_loss=minimax ...).")] = None,
    train_split: Annotated[str, typer.Option("--train-split", help="train, train-half-a or train-half-b (disjoint stratified halves).")] = "train",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the train split.")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 128,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW, cosine decay).")] = 2e-3,
    shift: Annotated[int, typer.Option("--shift", help="Augmentation: random translation by up to this many pixels.")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Directory for <name>.safetensors and <name>.json (default: the --zoo or user zoo).")] = None,
    zoo: Annotated[Optional[Path], typer.Option("--zoo", help="Zoo directory to write into (registered automatically); default ~/.cache/advbench/zoo.")] = None,
    reproduce_name: Annotated[Optional[str], typer.Option("--reproduce", metavar="NAME", help="Re-train zoo model NAME from its card and report the clean-accuracy difference.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    verbose: Verbose = False,
) -> None:
    """Train a model with a seeded recipe; writes safetensors weights and a model card (or --reproduce one)."""
    from ..engine.config import check_out_dir, check_seed, resolve_device
    from ..errors import ConfigError
    from ..models.zoo import user_zoo_dir
    from ..train import parse_arch_options, parse_recipe_options, reproduce, train_classifier
    from .render import note

    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    check_seed(seed)
    out_dir = check_out_dir(out or zoo) if (out or zoo) is not None else user_zoo_dir()
    dev = resolve_device(device)
    host = _host()
    if reproduce_name:
        from ..gan.train import reproduce_gan

        card, diff = reproduce(reproduce_name, out_dir, dataset=host.dataset_spec, zoo_dirs=host.zoo_dirs(), device=dev,
                               progress=not quiet, reproducers={"gan": reproduce_gan})
        note(f"{reproduce_name}: clean {100 * card['clean_accuracy']:.2f}% ({diff:+.2f} pp vs its card), "
             f"robust {100 * (card.get('robust_accuracy') or 0):.1f}%; wrote {out_dir}")
        if abs(diff) > 2:
            raise ConfigError(f"{reproduce_name} reproduced {diff:+.2f} pp away from its card (more than 2 pp)")
        return
    if not name:
        raise ConfigError("--name is required (e.g. --name cnn.mnist5k_mine), unless --reproduce NAME")
    spec = host.dataset_spec(dataset)
    if recipe == "gan":
        if arch_opt:
            raise ConfigError("--arch-opt is not for --recipe gan (its networks are sized by --recipe-opt width=...)")
        from ..gan.train import parse_gan_options, train_gan

        train_gan(dataset=spec, out_dir=out_dir, name=name.split(".", 1)[-1], epochs=epochs, batch_size=batch_size,
                  lr=lr, seed=seed, device=dev, progress=not quiet, **parse_gan_options(recipe_opt or []))
        note(f"GAN {name}: wrote the generator, the discriminator and sample grids to {out_dir}")
        return
    card = train_classifier(
        dataset=spec, arch=arch, name=name, out_dir=out_dir, recipe=recipe, epochs=epochs, batch_size=batch_size,
        lr=lr, shift=shift, seed=seed, device=dev, progress=not quiet,
        recipe_options=parse_recipe_options(recipe, recipe_opt or []), train_split=train_split,
        arch_options=parse_arch_options(arch_opt or []),
    )
    robust = card.get("robust_accuracy")
    note(f"{name}: clean accuracy {100 * card['clean_accuracy']:.2f}% on {dataset}/test"
         + (f", robust {100 * robust:.1f}% under PGD" if robust is not None else "")
         + f", {card['wall_time_s']:.1f} s; wrote {Path(out_dir) / (name + '.safetensors')} and {name}.json")
    note(_where_run_finds(name, Path(out_dir), host))


def _where_run_finds(name: str, out_dir: Path, host) -> str:
    """How ``advbench run`` reaches a model just written to ``out_dir``: directly when ``out_dir`` is a zoo the
    host reads (the user zoo, ``$ADVBENCH_ZOO``), else the ``--zoo`` option or the environment variable."""
    if any(out_dir.resolve() == d.resolve() for d in host.zoo_dirs() if d.exists()):
        return f"run it with: advbench run --models {name}"
    return (f"{out_dir} is not a zoo advbench reads by default: run it with `advbench run --zoo {out_dir} --models "
            f"{name}`, or add the directory to $ADVBENCH_ZOO")


def main() -> None:
    """Console-script entry point."""
    app()
