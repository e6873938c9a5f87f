"""The paper profile equals Table 6 of the paper, every row (COSMIC, the table's last line,
included), and a run that deviates from it says so."""

from __future__ import annotations

import pytest

from pipelines import table6
from pipelines.settings import hyper, load_profile

# Transcribed from ../shared/paper/dnarch-paper.txt, Table 6, independently of pipelines/table6:
# DATASET  EPOCHS  BATCH  LR  DROPOUT  WEIGHT DECAY  w0  lambda  tau_res  tau_ch  tau_depth
TABLE_6 = """
LISTOPS     50   50  0.005  0.0  0.01    27.5k  5.0  50   25  8
TEXT        100  50  0.02   0.2  0.01    19.5k  0.1  50   25  8
RETRIEVAL   50   50  0.001  0.1  0.01    21.5k  0.1  50   25  8
IMAGE       210  50  0.02   0.1  0.001   12.5k  0.1  25   25  8
PATHFINDER  210  50  0.005  0.0  0.001   21.5k  0.1  50   25  8
PATH-X      80   32  0.001  0.0  0.0     30k    0.1  100  25  8
CIFAR10     210  50  0.01   0.1  0.01    21.5k  0.1  25   25  8
CIFAR100    210  50  0.01   0.0  0.01    6.5k   5.0  25   25  8
DARCYFLOW   310  8   0.02   0.0  0.0001  24.5k  0.1  50   25  8
COSMIC      310  8   0.02   0.3  0.0001  5.5k   0.1  100  25  8
"""
KEYS = ("epochs", "batch_size", "lr", "dropout", "weight_decay", "w0", "lam")
KEYS += ("tau_resolution", "tau_channel", "tau_depth")
NAMES = {"PATH-X": "pathx"}


def _parse() -> dict[str, dict[str, float]]:
    rows = {}
    for line in TABLE_6.strip().splitlines():
        name, *cells = line.split()
        values = [float(c[:-1]) * 1000 if c.endswith("k") else float(c) for c in cells]
        rows[NAMES.get(name, name.lower())] = dict(zip(KEYS, values))
    return rows


PAPER = _parse()


def test_transcription_has_every_row():
    assert len(PAPER) == 10 and PAPER["cosmic"]["dropout"] == 0.3


@pytest.mark.parametrize("dataset", sorted(PAPER))
def test_paper_profile_equals_table6(dataset):
    hp = hyper(load_profile("paper"), dataset)
    for key, want in PAPER[dataset].items():
        assert float(hp[key]) == want, f"paper.yaml {dataset}.{key}={hp[key]}, Table 6: {want}"
    warmup = 5 if dataset in ("listops", "retrieval", "pathx") else 10  # Appx. E.2
    assert hp["warmup_epochs"] == warmup
    for key, want in PAPER[dataset].items():  # and the module runs are checked against
        assert float(table6.TABLE6[dataset][key]) == want


def test_paper_profile_runs_have_no_deviations():
    settings = load_profile("paper")
    for dataset in PAPER:
        hp = hyper(settings, dataset)
        assert table6.deviations(dataset, hp, settings["model"]) == [], dataset


def test_a_deviation_is_listed_and_described():
    settings = load_profile("paper")
    hp = dict(hyper(settings, "cosmic"), dropout=0.0, epochs=3)
    model = dict(settings["model"], width=64)
    devs = table6.deviations("cosmic", hp, model)
    assert {d["key"] for d in devs} == {"dropout", "epochs", "model.width"}
    text = table6.describe(devs)
    assert text.startswith("deviates: ")
    assert "epochs=3 (Table 6: 310)" in text and "dropout=0.0 (Table 6: 0.3)" in text
    assert "model.width=64 (Sec. 3: 140)" in text
    with pytest.raises(KeyError, match="Table 6 has no row"):
        table6.reference("mnist")
