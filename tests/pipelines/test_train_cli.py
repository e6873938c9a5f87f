"""The training CLI (pipelines.train): resume equals an uninterrupted run, NaN stops the run
without touching the last checkpoint, bad input fails with the valid values, result.json
carries provenance. Tiny generated data, the smoke profile, CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_prep.pipeline import prepare
from pipelines import train as T
from pipelines.inputs import Resizer
from pipelines.settings import SettingsError, load_profile, validate


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    prepare("darcyflow", "generate", root / "darcyflow", size=20, progress=False, fast=True)
    prepare("listops", "generate", root / "listops", size=40, progress=False)
    return root


def _run(fw, dataset, data, out, *extra) -> int:
    argv = [
        "--framework", fw, "--dataset", dataset, "--variant", "krwd", "--profile", "smoke",
        "--out", str(out), "--data", str(data / dataset), "--no-progress", *extra,
    ]  # fmt: skip
    return T.main(argv)


def _metrics(path: Path) -> list[dict]:
    import csv

    rows = list(csv.DictReader(open(path)))
    for r in rows:
        r.pop("wall_s")
    return rows


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_resume_gives_the_uninterrupted_numbers(fw, data, tmp_path):
    assert _run(fw, "darcyflow", data, tmp_path / "full") == 0
    # "killed" right after the checkpoint of epoch 1, then the same command again
    assert _run(fw, "darcyflow", data, tmp_path / "half", "--debug-stop-after-epoch", "1") == 3
    assert not (tmp_path / "half" / "result.json").exists()
    assert len(_metrics(tmp_path / "half" / "metrics.csv")) == 1
    assert _run(fw, "darcyflow", data, tmp_path / "half") == 0
    assert _metrics(tmp_path / "full" / "metrics.csv") == _metrics(
        tmp_path / "half" / "metrics.csv"
    )
    a = json.loads((tmp_path / "full" / "result.json").read_text())
    b = json.loads((tmp_path / "half" / "result.json").read_text())
    keys = ("test_metric", "test_loss", "c_ratio", "architecture", "mask_sizes", "run_key")
    keys += ("test_metric_final", "best_epoch", "val_metric", "c_ratio_realised")
    for key in keys:
        assert a[key] == b[key], key
    assert len(_metrics(tmp_path / "full" / "metrics.csv")) == 2


def test_result_json_provenance(data, tmp_path):
    assert _run("torch", "listops", data, tmp_path / "r") == 0
    r = json.loads((tmp_path / "r" / "result.json").read_text())
    for key in ("git_sha", "versions", "device", "seed", "config", "wall_s", "architecture"):
        assert key in r, key
    assert r["metric"] == "accuracy" and 0.0 <= r["test_metric"] <= 100.0
    assert r["data"]["kind"] == "generated" and r["profile"] == "smoke"
    assert r["depth"] == len(r["architecture"]) >= 1
    assert r["config"]["resize"] == {"shape": [256], "mode": "crop"}
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "c_ratio"):
        assert col in header
    assert any(c.startswith("size.blocks.0.width") for c in header)
    assert "size.depth" in header


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_best_validation_checkpoint_is_tested(fw, data, tmp_path):
    """The reference CCNN protocol: the epoch with the best val metric is reloaded and tested;
    the final epoch's numbers are recorded too. The krwd masks move every epoch, so C_curr at
    the reloaded epoch tells which parameters were tested."""
    assert _run(fw, "darcyflow", data, tmp_path / "r", "--epochs", "4") == 0
    r = json.loads((tmp_path / "r" / "result.json").read_text())
    rows = _metrics(tmp_path / "r" / "metrics.csv")
    vals = [float(x["val_rel_l2"]) for x in rows]
    best = int(np.argmin(vals)) + 1  # rel. L2: lower is better; first epoch on ties
    assert r["evaluation"] == "best_val" and r["best_epoch"] == best
    assert r["val_metric"] == pytest.approx(vals[best - 1])
    assert r["c_ratio"] == pytest.approx(float(rows[best - 1]["c_ratio"]), rel=1e-9)
    assert r["c_ratio_final"] == pytest.approx(float(rows[-1]["c_ratio"]), rel=1e-9)
    assert r["c_ratio_realised"] > 0 and "c_ratio_realised" in rows[0]
    if best == len(rows):
        assert r["test_metric"] == r["test_metric_final"]
    assert r["val_is_test"] is False and r["deviations"] == []  # smoke: no Table 6 check
    assert (tmp_path / "r" / ("best.pt" if fw == "torch" else "best.msgpack")).exists()


def test_paper_profile_run_lists_its_deviations_from_table6(data, tmp_path):
    """A paper-profile run with an override is never passed off as a reproduction."""
    import yaml

    cfg = load_profile("paper")
    cfg["hyper"]["darcyflow"]["lr"] = 0.5  # an edited copy of the profile
    cfg["hyper"]["darcyflow"]["micro_batches"] = 2  # a memory setting, not a deviation
    cfg["model"].update(width=8, kernel_hidden=16)  # (also keeps the run short: CPU tier)
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    meta = json.loads((data / "darcyflow" / "meta.json").read_text())
    meta["source"] = "download"  # the paper profile refuses generated data
    fake = tmp_path / "darcy"
    fake.mkdir()
    for f in (data / "darcyflow").iterdir():
        (fake / f.name).symlink_to(f)
    (fake / "meta.json").unlink()
    (fake / "meta.json").write_text(json.dumps(meta))
    argv = [
        "--framework", "torch", "--dataset", "darcyflow", "--variant", "ccnn",
        "--profile", "paper", "--config", str(path), "--epochs", "1", "--threads", "1",
        "--out", str(tmp_path / "o"), "--data", str(fake), "--no-progress",
    ]  # fmt: skip
    assert T.main(argv) == 0
    r = json.loads((tmp_path / "o" / "result.json").read_text())
    keys = {d["key"]: d for d in r["deviations"]}
    assert keys["lr"]["value"] == 0.5 and keys["lr"]["paper"] == 0.02
    assert keys["epochs"]["value"] == 1 and keys["epochs"]["paper"] == 310
    assert keys["model.width"]["value"] == 8 and keys["model.width"]["paper"] == 140
    assert keys["model.kernel_hidden"]["value"] == 16
    # nothing else differs from Table 6 / Sec. 3
    assert set(keys) == {"lr", "epochs", "model.width", "model.kernel_hidden"}
    assert r["config"]["hyper"]["micro_batches"] == 2


def _micro_profile(tmp_path, micro_batches) -> Path:
    import yaml

    cfg = load_profile("smoke")
    assert cfg["hyper"]["darcyflow"]["micro_batches"] == 1  # the default
    cfg["hyper"]["darcyflow"]["micro_batches"] = micro_batches
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_a_profile_with_micro_batches_trains_and_records_it(fw, data, tmp_path):
    """Gradient accumulation over 2 micro-batches of the smoke batch: the run trains, reports
    finite full-batch losses and records micro_batches in result.json's config (and so in
    the run key: it changes the numbers, BatchNorm's statistics being per micro-batch)."""
    path = _micro_profile(tmp_path, 2)
    out = tmp_path / "r"
    assert _run(fw, "darcyflow", data, out, "--config", str(path), "--epochs", "1") == 0
    r = json.loads((out / "result.json").read_text())
    assert r["config"]["hyper"]["micro_batches"] == 2 and r["config"]["batch_size"] % 2 == 0
    assert np.isfinite(r["test_metric"]) and r["deviations"] == []
    rows = _metrics(out / "metrics.csv")
    assert len(rows) == 1 and np.isfinite(float(rows[0]["train_loss"]))


def test_micro_batches_that_do_not_divide_the_batch_are_refused(data, tmp_path, capsys):
    """Refused before any step, naming the batch size and the key; 0 fails at load."""
    capsys.readouterr()
    out = tmp_path / "r"
    assert _run("torch", "darcyflow", data, out, "--config", str(_micro_profile(tmp_path, 3))) == 1
    err = capsys.readouterr().err
    assert "batch size 8 is not divisible by micro_batches=3" in err
    assert "micro_batches of darcyflow" in err and not (out / "result.json").exists()
    cfg = load_profile("smoke")
    cfg["hyper"]["darcyflow"]["micro_batches"] = 0
    with pytest.raises(SettingsError, match="micro_batches"):
        validate(cfg)


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_nan_stops_and_keeps_the_last_checkpoint(fw, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(fw, "darcyflow", data, out, "--debug-stop-after-epoch", "1") == 3
    ckpt = next(out.glob("checkpoint.*"))
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert _run(fw, "darcyflow", data, out, "--debug-nan-step", "3") == 2
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "at step 3" in err
    assert "head" in err  # the poisoned parameter is named
    assert "unchanged" in err
    assert ckpt.read_bytes() == before
    assert not (out / "result.json").exists()


def test_checkpoint_of_another_configuration_is_refused(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run("torch", "darcyflow", data, out, "--debug-stop-after-epoch", "1") == 3
    assert _run("torch", "darcyflow", data, out, "--epochs", "3") == 1
    assert "different configuration" in capsys.readouterr().err


def test_a_checkpoint_of_the_other_initialisation_choice_is_refused(data, tmp_path, capsys):
    """A run stopped under the defaults (kernel_scale init, linear_init ccnn) and resumed with
    the profile's model.kernel_scale set to forward is refused before any step, naming both
    choices; the checkpoint is left as it was."""
    import yaml

    out = tmp_path / "run"
    assert _run("torch", "darcyflow", data, out, "--debug-stop-after-epoch", "1") == 3
    ckpt = out / "checkpoint.pt"
    before = ckpt.read_bytes()
    cfg = load_profile("smoke")
    assert (cfg["model"]["kernel_scale"], cfg["model"]["linear_init"]) == ("init", "ccnn")
    cfg["model"]["kernel_scale"] = "forward"
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert _run("torch", "darcyflow", data, out, "--config", str(path)) == 1
    err = capsys.readouterr().err
    assert "was trained with kernel_scale=init, linear_init=ccnn" in err
    assert "this run has kernel_scale=forward, linear_init=ccnn" in err
    assert "cannot go on under the other" in err
    assert ckpt.read_bytes() == before and not (out / "result.json").exists()


def test_checkpoints_without_recorded_choices_count_as_the_earlier_ones():
    """Checkpoints written before the choices were recorded were trained with kernel_scale
    forward and linear_init uniform: the check reads them so."""
    from implementations.common.config import tiny_config

    cfg = tiny_config()
    ckpt = Path("run/checkpoint.pt")
    with pytest.raises(T.TrainError, match="trained with kernel_scale=forward, linear_init=unif"):
        T.check_init_choices(ckpt, {"run_key": "0", "epoch": 1}, cfg)
    T.check_init_choices(
        ckpt, {"epoch": 1}, cfg.replace(kernel_scale="forward", linear_init="uniform")
    )
    T.check_init_choices(ckpt, {"init_choices": cfg.init_choices()}, cfg)
    with pytest.raises(T.TrainError, match="this run has kernel_scale=init, linear_init=uniform"):
        T.check_init_choices(
            ckpt, {"init_choices": cfg.init_choices()}, cfg.replace(linear_init="uniform")
        )


@pytest.mark.parametrize(
    "flag,value", [("--dataset", "mnist"), ("--variant", "kw"), ("--framework", "tf")]
)
def test_unknown_choices_list_the_valid_values(flag, value, tmp_path, capsys):
    argv = ["--framework", "torch", "--dataset", "listops", "--variant", "k", "--profile", "smoke"]
    argv += ["--out", str(tmp_path)]
    argv[argv.index(flag) + 1] = value
    with pytest.raises(SystemExit):
        T.main(argv)
    err = capsys.readouterr().err
    assert value in err and "choose from" in err


def test_missing_data_names_the_command(tmp_path, capsys):
    argv = "--framework torch --dataset darcyflow --variant k --profile smoke".split()
    rc = T.main([*argv, "--out", str(tmp_path / "o"), "--data", str(tmp_path / "nope")])
    assert rc == 1
    assert "snakemake --cores 1" in capsys.readouterr().err


# ---- settings -------------------------------------------------------------------------------
def test_profiles_validate_and_fill_defaults():
    paper = load_profile("paper")
    assert paper["hyper"]["listops"]["warmup_epochs"] == 5
    assert paper["hyper"]["text"]["tau_channel"] == 25 and paper["hyper"]["text"]["tau_depth"] == 8
    # Cosmic has its own Table 6 row (the table's last line; tests/pipelines/test_table6.py)
    assert paper["hyper"]["cosmic"]["dropout"] == 0.3 and paper["hyper"]["cosmic"]["w0"] == 5500
    smoke = load_profile("smoke")
    assert smoke["paths"]["reports"].startswith("smoke/")
    # the initialisation choices: every shipped profile states the defaults, the schema fills
    # them into a profile that leaves them out
    for name in ("paper", "smoke", "claims"):
        model = load_profile(name)["model"]
        assert (model["kernel_scale"], model["linear_init"]) == ("init", "ccnn"), name
    bare = load_profile("smoke", overrides={"model": {"blocks": 2}})["model"]
    assert (bare["kernel_scale"], bare["linear_init"]) == ("init", "ccnn")
    meta = {"task": "dense", "input_kind": "continuous", "out_channels": 1, "in_channels": 1}
    hp = smoke["hyper"]["darcyflow"]
    for ks, li in (("init", "ccnn"), ("forward", "uniform")):
        settings = {**smoke, "model": {**smoke["model"], "kernel_scale": ks, "linear_init": li}}
        cfg = T.model_config(settings, {**meta, "data_dim": 2}, hp, "k", (9, 9))
        assert (cfg.kernel_scale, cfg.linear_init) == (ks, li)


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"datasets": ["listops", "mnist"]}, "is not one of"),
        ({"variants": ["kw"]}, "'ccnn', 'k', 'kr', 'krwd'"),
        ({"frameworks": ["tf"]}, "'torch', 'jax'"),
        ({"bogus": 1}, "Additional properties"),
        ({"model": {"kernel_scale": "per_step"}}, "'per_step' is not one of ['init', 'forward']"),
        ({"model": {"linear_init": "kaiming"}}, "'kaiming' is not one of ['ccnn', 'uniform']"),
    ],
)
def test_bad_settings_fail_with_valid_values(override, needle):
    with pytest.raises(SettingsError, match="invalid workflow configuration") as e:
        load_profile("smoke", overrides=override)
    assert needle in str(e.value)


def test_unknown_profile():
    with pytest.raises(SettingsError, match="valid profiles"):
        load_profile("fast")


def test_hyper_typo_rejected():
    cfg = load_profile("smoke")
    cfg["hyper"]["listops"]["lr_typo"] = 1
    with pytest.raises(SettingsError, match="lr_typo"):
        validate(cfg)


# ---- resizing ---------------------------------------------------------------------------------
def test_resizer_pool_crop_stride():
    meta = {"input_shape": [16], "image_shape": [4, 4]}
    r = Resizer.from_settings(meta, {"input_shape": [4], "resize": "pool"})
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 16)  # (B, C, L) of a 4x4 image
    y = r.apply({"inputs": x, "targets": np.zeros(1)}, tokens=False)["inputs"]
    np.testing.assert_allclose(y.reshape(2, 2), [[2.5, 4.5], [10.5, 12.5]])
    meta2 = {"input_shape": [85, 85]}
    r2 = Resizer.from_settings(meta2, {"input_shape": [22, 22], "resize": "stride"})
    f = np.arange(85 * 85, dtype=np.float32).reshape(85, 85)
    np.testing.assert_array_equal(r2.apply_field(f), f[::4, ::4])
    r3 = Resizer.from_settings({"input_shape": [9]}, {"input_shape": [5], "resize": "crop"})
    tok = np.arange(18).reshape(1, 2, 9)
    np.testing.assert_array_equal(r3.apply({"inputs": tok}, tokens=True)["inputs"], tok[..., :5])
    assert Resizer.from_settings(meta2, {"input_shape": None}) is None


@pytest.mark.parametrize(("fw", "variants"), [("torch", ["krwd", "ccnn"]), ("jax", ["k", "ccnn"])])
def test_several_variants_in_one_process_equal_separate_runs(fw, variants, data, tmp_path):
    """`--variant A B` (the smoke profile's group_variants) trains each variant exactly as a
    separate process does: nothing of the first run (seeds, RNG state, caches, memoised
    architectures) leaks into the second. Equal metrics.csv (but wall times) and results."""
    argv = ["--framework", fw, "--dataset", "listops", "--profile", "smoke", "--no-progress"]
    argv += ["--data", str(data / "listops")]
    out = str(tmp_path / "group" / "{variant}")
    assert T.main([*argv, "--variant", *variants, "--out", out]) == 0
    for v in variants:
        assert T.main([*argv, "--variant", v, "--out", str(tmp_path / "alone" / v)]) == 0
        group, alone = tmp_path / "group" / v, tmp_path / "alone" / v
        assert _metrics(group / "metrics.csv") == _metrics(alone / "metrics.csv"), v
        a = json.loads((group / "result.json").read_text())
        b = json.loads((alone / "result.json").read_text())
        assert a["variant"] == v
        for key in ("test_metric", "test_loss", "c_ratio", "c_ratio_realised", "architecture"):
            assert a[key] == b[key], (v, key)


def test_several_variants_need_variant_in_out(tmp_path, capsys):
    argv = ["--framework", "torch", "--dataset", "listops", "--variant", "k", "kr"]
    argv += ["--profile", "smoke", "--out", str(tmp_path / "one")]
    assert T.main(argv) == 1
    err = capsys.readouterr().err
    assert "one directory for 2 variants (k kr); put {variant} in it" in err


def test_a_failing_variant_does_not_stop_the_others(monkeypatch, tmp_path, capsys):
    ran = []

    def fake_train(args):
        ran.append((args.variant, args.out))
        if args.variant == "k":
            raise T.NonFiniteLoss("non-finite loss (nan) at step 3")

    monkeypatch.setattr(T, "train", fake_train)
    argv = ["--framework", "torch", "--dataset", "listops", "--variant", "k", "kr", "k"]
    argv += ["--profile", "smoke", "--out", str(tmp_path / "{variant}" / "s0")]
    assert T.main(argv) == 2  # the first failure's code (NaN: 2); repeated names run once
    assert ran == [("k", str(tmp_path / "k" / "s0")), ("kr", str(tmp_path / "kr" / "s0"))]
    assert "error (k): non-finite loss" in capsys.readouterr().err


def test_a_jax_checkpoint_with_the_old_optimizer_layout_is_refused_clearly(tmp_path):
    """Checkpoints written before the flat AdamW state hold optax.adamw's per-leaf state:
    resuming one fails with a TrainError naming the file and what to do."""
    import flax.serialization as ser
    import jax
    import optax

    from implementations.common.config import ModelConfig
    from implementations.jax import model as jm
    from implementations.jax.train import Backend

    cfg = ModelConfig(variant="k", data_dim=1, input_shape=(9,), out_size=2, in_channels=1)
    hp = {"lr": 0.01, "weight_decay": 0.1}
    backend = Backend(cfg, hp, 0, "cross_entropy", 0.0, (1, 4))
    old = optax.adamw(
        backend.schedule, weight_decay=0.1, mask=lambda p: jm.param_groups(backend.model, p)
    ).init(backend.state.params)
    state = ser.to_state_dict(backend.state.replace(opt_state=old))
    path = tmp_path / "checkpoint.msgpack"
    path.write_bytes(ser.msgpack_serialize({"state": state, "extra": json.dumps({"epoch": 1})}))
    with pytest.raises(T.TrainError, match="cannot be resumed: delete it"):
        T.load_checkpoint(backend, path)
    before = jax.tree_util.tree_leaves(backend.state)
    T.save_checkpoint(backend, tmp_path / "new.msgpack", {"epoch": 1})  # the current layout
    assert T.load_checkpoint(backend, tmp_path / "new.msgpack") == {"epoch": 1}  # round-trips
    for a, b in zip(before, jax.tree_util.tree_leaves(backend.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
