"""pipelines.bench_ccnn without the CCNN code: a bad --ccnn-path is one clear error and writes
nothing; the interleaved timing, the ratios and the CSV + JSON are exercised with small torch
modules standing for the two sides (the same functions `main` runs after loading the checkout).
With DNARCH_CCNN_PATH set to a checkout of github.com/david-knigge/ccnn, a slow test builds
both sides at tiny size and runs the whole script. Speed itself is never asserted here."""

from __future__ import annotations

import csv
import json
import os
import statistics
from pathlib import Path

import pytest
import torch
from torch import nn

from pipelines import bench_ccnn as bc


def _bad(tmp_path, capsys, path) -> str:
    out = tmp_path / "res" / "ccnn.csv"
    rc = bc.main(["--ccnn-path", str(path), "--steps", "1", "--rounds", "1", "--out", str(out)])
    assert rc == 2
    assert not (tmp_path / "res").exists()  # nothing written, not even the folder
    return capsys.readouterr().err


def test_missing_path_is_one_clear_error(tmp_path, capsys):
    err = _bad(tmp_path, capsys, tmp_path / "nope")
    assert str(tmp_path / "nope") in err and "github.com/david-knigge/ccnn" in err
    assert err.count("\n") == 1


def test_folder_without_ckconv_is_refused(tmp_path, capsys):
    (tmp_path / "elsewhere").mkdir()
    err = _bad(tmp_path, capsys, tmp_path / "elsewhere")
    assert f"no ckconv package under {tmp_path / 'elsewhere'}" in err
    assert "pass the root of a checkout of github.com/david-knigge/ccnn" in err


def test_partial_checkout_names_what_is_missing(tmp_path, capsys):
    (tmp_path / "part" / "ckconv").mkdir(parents=True)
    (tmp_path / "part" / "ckconv" / "__init__.py").write_text("")
    err = _bad(tmp_path, capsys, tmp_path / "part")
    assert "models/resnet.py" in err and "ckconv/nn/flexconv.py" in err


def test_layout_check_and_a_checkout_inside_the_repository(tmp_path, monkeypatch):
    root = tmp_path / "ccnn"  # the files the benchmark imports, empty: only the layout is read
    for f in bc.REQUIRED:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("")
    assert bc.check_checkout(root) == root.resolve()
    assert bc.checkout_commit(root.resolve()) == "unknown"  # not a git checkout
    monkeypatch.setattr(bc, "ROOT", tmp_path.resolve())  # as if tmp_path were this repository
    with pytest.raises(bc.CheckoutError, match="inside this repository"):
        bc.check_checkout(root)


def _contender(name: str, side: str, log: list, width: int) -> bc.Contender:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, width), nn.GELU(), nn.Linear(width, 3))
    step = bc.train_step(model, torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))

    def logged() -> None:
        step()
        log.append(name)

    params = bc.count_params(model, lambda n: n.startswith("0."))
    return bc.Contender(name, side, logged, *params, {"width": width})


def test_interleaved_timing_ratios_and_files(tmp_path):
    log: list[str] = []
    cs = [
        _contender("ours-a", "ours", log, 4),
        _contender("ours-b", "ours", log, 8),
        _contender("ref-x", "reference", log, 16),
    ]
    ticks: list[str] = []
    times = bc.time_interleaved(cs, steps=2, rounds=3, warmup=1, progress=ticks.append)
    # warm-up once each, then round r starts at model r % 3, each model 2 steps in a row
    assert log[:3] == ["ours-a", "ours-b", "ref-x"]
    order = ["ours-a", "ours-b", "ref-x"]
    expect = [order[(r + i) % 3] for r in range(3) for i in range(3) for _ in range(2)]
    assert log[3:] == expect and ticks == log
    assert {k: len(v) for k, v in times.items()} == {n: 6 for n in order}

    times = {"ours-a": [10.0, 12.0, 11.0], "ours-b": [20.0, 19.0, 21.0], "ref-x": [30.0] * 3}
    meta = {"threads": 2, "device": "cpu", "torch": torch.__version__, "git_sha": "abc",
            "ccnn_commit": "unknown", "note": "n", "steps": 1}  # fmt: skip
    out = tmp_path / "bench" / "ccnn.csv"
    text = bc.write_results(out, cs, times, meta)
    rows = list(csv.DictReader(out.open()))
    assert out.read_text() == text and list(rows[0]) == bc.COLUMNS
    assert [(r["ours"], r["reference"]) for r in rows] == [("ours-a", "ref-x"), ("ours-b", "ref-x")]
    a, b = rows
    assert (a["ours_ms"], a["reference_ms"], a["ratio"], a["goal_met"]) == (
        "11.0", "30.0", "2.727", "True",
    )  # fmt: skip
    assert (b["ratio"], b["goal_met"]) == ("1.500", "True")  # 30 / 20: the goal is inclusive
    assert (a["ours_min_ms"], a["reference_min_ms"], a["ratio_of_min"]) == ("10.0", "30.0", "3.000")
    assert (b["ours_min_ms"], b["ratio_of_min"]) == ("19.0", "1.579")
    assert a["ours_params"] == str(6 * 4 + 4 + 4 * 3 + 3) and a["ours_kernel_params"] == "28"
    assert a["reference_params"] == str(6 * 16 + 16 + 16 * 3 + 3)
    assert (a["threads"], a["ccnn_commit"], a["git_sha"], a["note"]) == ("2", "unknown", "abc", "n")
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["git_sha"] and side["versions"]["torch"] and side["steps"] == 1
    assert side["models"]["ref-x"]["median_ms"] == statistics.median(times["ref-x"])
    assert side["models"]["ours-b"]["config"] == {"width": 8}
    assert sorted(p.name for p in out.parent.iterdir()) == ["ccnn.csv", "ccnn.json"]  # no temps


def test_goal_not_met_below_the_ratio():
    log: list[str] = []
    cs = [_contender("o", "ours", log, 4), _contender("r", "reference", log, 4)]
    (row,) = bc.pair_rows(cs, {"o": [10.0], "r": [14.9]}, {})
    assert (row["ratio"], row["goal_met"]) == ("1.490", False)


def test_stand_ins_raise_when_used():
    mod = bc.StandIn("somepkg")
    cls = mod.Figure
    with pytest.raises(RuntimeError, match=r"somepkg\.Figure .*never call it"):
        cls()
    assert not hasattr(mod, "__wrapped__")  # dunder look-ups (inspect, pickle) stay honest


def test_our_side_is_the_paper_listops_ccnn():
    cfg = bc.our_config("trim")
    assert (cfg.variant, cfg.blocks, cfg.width, cfg.input_shape) == ("ccnn", 4, 140, (2048,))
    assert (cfg.vocab_size, cfg.out_size, cfg.kernel_hidden, cfg.kernel_layers) == (18, 10, 128, 4)
    s = bc.reference_settings("ccnn-global", dropout=0.0, width=140, blocks=4, kernel_hidden=32)
    assert s["conv"]["type"] == "SeparableCKConv" and s["net"]["no_blocks"] == 4
    assert s["net"]["dropout"] == 0.0 and bc.REFERENCE_NET["dropout"] == 0.1


CCNN_PATH = os.environ.get("DNARCH_CCNN_PATH")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:torch.meshgrid")  # the CCNN code calls it without indexing
@pytest.mark.skipif(not CCNN_PATH, reason="set DNARCH_CCNN_PATH to a checkout of the CCNN code")
def test_both_sides_run_forward_backward_at_tiny_size(tmp_path):
    code = bc.load_reference(CCNN_PATH)
    cs = bc.build_contenders(code, torch.device("cpu"), tiny=True)
    assert [c.name for c in cs] == ["ours-trim", "ours-virtual", "ccnn-flexconv", "ccnn-global"]
    for c in cs:
        c.step()  # forward, backward, AdamW step
        assert c.params > c.kernel_params > 0
    out = tmp_path / "ccnn.csv"
    argv = ["--ccnn-path", CCNN_PATH, "--tiny", "--steps", "1", "--rounds", "1", "--out", str(out)]
    assert bc.main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and all(float(r["ratio"]) > 0 for r in rows)
    assert rows[0]["ccnn_commit"] == bc.checkout_commit(Path(CCNN_PATH).resolve())
