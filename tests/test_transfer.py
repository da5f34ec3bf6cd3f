"""Transfer attacks and the transferability matrix."""

import pytest

import advbench
from advbench.engine.config import RunConfig
from advbench.engine.executor import execute
from advbench.errors import AdvbenchError, ConfigError
from advbench.plugins import get_host

KW = dict(n_samples=50, device="cpu")


def test_transfer_attack_never_queries_the_target_and_stays_in_the_ball():
    rows = advbench.evaluate(models="cnn.mnist5k_std", attacks="pgd@linear.mnist5k_std", eps=[0.2],
                             attack_options={"pgd@linear.mnist5k_std": {"steps": 5}}, **KW).rows
    assert (rows.n_forward == 0).all() and (rows.n_backward == 0).all()
    assert (rows.perturbation_norm <= 0.2 + 1e-6).all()
    # the white-box attack on the target itself is stronger than the transferred one
    white = advbench.evaluate(models="cnn.mnist5k_std", attacks="pgd", eps=[0.2], attack_options={"pgd": {"steps": 5}}, **KW).rows
    assert white.robust.mean() <= rows.robust.mean()


def test_transfer_from_the_model_itself_equals_the_white_box_attack():
    kw = dict(eps=[0.1], attack_options={"fgsm@cnn.mnist5k_std": {}}, **KW)
    transferred = advbench.evaluate(models="cnn.mnist5k_std", attacks="fgsm@cnn.mnist5k_std", **kw).rows
    white = advbench.evaluate(models="cnn.mnist5k_std", attacks="fgsm", eps=[0.1], **KW).rows
    assert (transferred.adv_pred.values == white.adv_pred.values).all()


def test_mi_di_ti_options_run_and_respect_the_budget():
    rows = advbench.evaluate(models="test_resnet.mnist5k_std", attacks="transfer@cnn.mnist5k_std", eps=[0.2],
                             attack_options={"transfer@cnn.mnist5k_std": {"momentum": "1", "diversity": "0.5", "translation": "3", "steps": "5"}}, **KW).rows
    assert (rows.perturbation_norm <= 0.2 + 1e-6).all() and rows.success.any()


def test_unknown_surrogate_or_base_is_a_clear_error():
    with pytest.raises(AdvbenchError, match="unknown model 'cnn.mnist5k'"):
        advbench.evaluate(models="cnn.mnist5k_std", attacks="pgd@cnn.mnist5k", eps=[0.1], **KW)
    with pytest.raises(AdvbenchError, match="unknown attack 'pdg'"):
        advbench.evaluate(models="cnn.mnist5k_std", attacks="pdg@cnn.mnist5k_std", eps=[0.1], **KW)


def test_transferability_matrix_diagonal_equals_the_white_box_table(tmp_path):
    models = ("cnn.mnist5k_std", "linear.mnist5k_std", "test_resnet.mnist5k_std")
    outcome = execute(RunConfig(models=models, attacks=("pgd", "fgsm"), eps=(0.1, 0.2), n_samples=60, out=tmp_path,
                                sanity_checks=False, transfer_attack="fgsm"), get_host())
    matrix = outcome.transfer
    assert set(matrix.attack) == {"fgsm"}
    assert len(matrix) == 3 * 3 * 2  # source x target x eps
    white = outcome.rows[outcome.rows.attack == "fgsm"].groupby(["model", "eps"]).robust.mean()
    for r in matrix[matrix.source == matrix.target].itertuples():
        assert r.target_accuracy == pytest.approx(white[(r.target, r.eps)])
    assert (tmp_path / "transfer.parquet").is_file()
    # success is counted over the samples the target classifies correctly
    assert (matrix.n_target_correct <= matrix.n_samples).all()


def test_surrogates_option_expands_transfer():
    from advbench.engine.config import expand_surrogates

    assert expand_surrogates(("fgsm", "transfer"), ("a", "b")) == ("fgsm", "transfer@a", "transfer@b")
    with pytest.raises(ConfigError, match="needs --surrogates"):
        expand_surrogates(("transfer",), ())


def test_the_matrix_defaults_to_the_strongest_white_box_attack():
    from advbench.engine.resolve import pick_transfer_attack

    specs = {n: get_host().registry.attacks.get(n) for n in ("fgsm", "pgd", "square")}
    assert pick_transfer_attack(RunConfig(models=("a",)), specs) == "pgd"
    with pytest.raises(AdvbenchError, match="not a white-box attack"):
        pick_transfer_attack(RunConfig(models=("a",), transfer_attack="square"), specs)


def test_a_surrogate_is_loaded_with_the_runs_weights(tmp_path):
    """``--weights`` / ``--model-opt`` of a model apply to it as a surrogate too (the attack context loads it)."""
    from pathlib import Path

    import torch
    from safetensors.torch import load_file, save_file

    import advbench.models as models

    shipped = Path(models.__file__).parent / "zoo" / "linear.mnist5k_std.safetensors"
    save_file({k: torch.zeros_like(v) for k, v in load_file(str(shipped)).items()}, str(tmp_path / "zero.safetensors"))
    common = dict(models=("cnn.mnist5k_std",), attacks=("fgsm@linear.mnist5k_std",), eps=(0.1,), n_samples=20,
                  sanity_checks=False, transfer_matrix=False)
    plain = execute(RunConfig(**common), get_host()).rows
    zeroed = execute(RunConfig(**common, model_options={"linear.mnist5k_std": {"weights": str(tmp_path / "zero.safetensors")}}),
                     get_host()).rows
    attacked = plain.clean_correct
    assert (plain.perturbation_norm[attacked] > 0).all()
    assert (zeroed.perturbation_norm == 0).all()  # a zero network has zero gradients: FGSM does not move
