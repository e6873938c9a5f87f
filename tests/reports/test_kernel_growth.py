"""The kernel sizes of the claims report (reports.claims.kernel_growth): taps per block, axis
and epoch counted from the Gaussian mask sizes metrics.csv records, averaged over seeds, and the
figure the report embeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import claims as C


def _run(tmp: Path, variant: str, seed: int, sizes: dict[str, list[float]], kept_blocks=(0, 1),
         shape=(22, 22), framework="torch"):  # fmt: skip
    out = tmp / variant / framework / f"seed{seed}"
    out.mkdir(parents=True)
    arch = [{"block": b, "kernel_size": [3, 3], "resolution": list(shape), "width": [4, 4, 4]}
            for b in kept_blocks]  # fmt: skip
    r = {
        "dataset": "darcyflow", "variant": variant, "framework": framework, "seed": seed,
        "profile": "claims", "metric": "rel_l2", "higher_is_better": False, "test_metric": 0.1,
        "c_ratio": 1.0, "epochs": 3, "architecture": arch, "architecture_final": arch,
        "config": {"model": {"input_shape": list(shape)}},
    }  # fmt: skip
    (out / "result.json").write_text(json.dumps(r))
    n = len(next(iter(sizes.values())))
    m = pd.DataFrame({"epoch": np.arange(1, n + 1), "c_ratio": 1.0, "size.depth": 2.0, **sizes})
    m.to_csv(out / "metrics.csv", index=False)
    return str(out / "result.json")


@pytest.mark.parametrize(
    "size,n,taps",
    [
        (2.0911, 23, 3),  # the sigma floor: a hair above one grid step either side
        (2.09, 23, 1),  # just below it: the centre tap alone
        (3.96, 23, 3),
        (6.0, 23, 5),  # x_T = 0.261: 2 floor(0.261 * 11) + 1
        (23.0, 23, 23),  # clipped at n: the whole grid
        (9.59, 129, 9),
        (5.0, 1, 1),  # a one-sample axis
    ],
)
def test_full_grid_taps(size, n, taps):
    assert C.full_grid_taps(size, n) == taps


def test_taps_per_block_axis_and_epoch_mean_over_seeds(tmp_path):
    paths = [
        _run(tmp_path, "k", 0, {"size.blocks.0.kernel.0": [2.0911, 6.0, 23.0],
                                "size.blocks.0.kernel.1": [2.0911, 2.0911, 2.0911],
                                "size.blocks.1.kernel.0": [3.96, 3.96, 3.96],
                                "size.blocks.1.kernel.1": [3.96, 3.96, 3.96],
                                "size.blocks.0.width.in": [4.0, 4.0, 4.0]}),
        _run(tmp_path, "k", 1, {"size.blocks.0.kernel.0": [2.0911, 2.0911, 6.0],
                                "size.blocks.0.kernel.1": [2.0911, 2.0911, 2.0911],
                                "size.blocks.1.kernel.0": [3.96, 3.96, 3.96],
                                "size.blocks.1.kernel.1": [3.96, 3.96, 3.96]}),
        # krwd: block 1 is not in the final network (the depth mask dropped it)
        _run(tmp_path, "krwd", 0, {"size.blocks.0.kernel.0": [2.0911, 2.0911, 2.0911],
                                   "size.blocks.0.kernel.1": [2.0911, 2.0911, 2.0911],
                                   "size.blocks.1.kernel.0": [2.0911, 2.0911, 2.0911],
                                   "size.blocks.1.kernel.1": [2.0911, 2.0911, 2.0911]},
             kept_blocks=(0,)),
        _run(tmp_path, "ccnn", 0, {"size.depth": [1.0, 1.0, 1.0]}),  # no kernel masks
    ]  # fmt: skip
    g = C.kernel_growth(C.load(paths, "claims"))
    assert set(g["variant"]) == {"k", "krwd"}  # ccnn learns no kernel size
    k00 = g[(g["variant"] == "k") & (g["block"] == 0) & (g["axis"] == 0)]
    assert list(k00["epoch"]) == [1, 2, 3]
    assert list(k00["taps"]) == [3.0, 4.0, 14.0]  # (3 + 3) / 2, (5 + 3) / 2, (23 + 5) / 2
    assert list(k00["size"]) == pytest.approx([2.0911, (6.0 + 2.0911) / 2, (23.0 + 6.0) / 2])
    assert (k00["seeds"] == 2).all() and (k00["full"] == 23).all()
    assert len(g[g["variant"] == "k"]) == 2 * 2 * 3  # blocks x axes x epochs
    krwd = g[g["variant"] == "krwd"]
    assert set(krwd[krwd["kept"] == 1]["block"]) == {0}
    assert set(krwd[krwd["kept"] == 0]["block"]) == {1}

    out = tmp_path / "kernel_growth.png"
    C.growth_figure(g, out)
    assert out.stat().st_size > 0


def test_no_learned_kernels_still_gives_a_figure(tmp_path):
    g = C.kernel_growth(C.load([_run(tmp_path, "ccnn", 0, {"size.depth": [1.0]})], "claims"))
    assert g.empty
    C.growth_figure(g, tmp_path / "kernel_growth.png")
    assert (tmp_path / "kernel_growth.png").stat().st_size > 0


def test_sizes_without_the_input_shape_are_refused(tmp_path):
    p = Path(_run(tmp_path, "k", 0, {"size.blocks.0.kernel.0": [3.0]}))
    r = json.loads(p.read_text())
    r["config"] = {}
    p.write_text(json.dumps(r))
    with pytest.raises(C.ClaimsError, match=r"no config\.model\.input_shape"):
        C.kernel_growth(C.load([str(p)], "claims"))
