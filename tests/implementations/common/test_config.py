"""ModelConfig validation: invalid values fail at construction, listing the valid choices."""

import pytest

from implementations.common.config import ConfigError, ModelConfig

BASE = dict(variant="krwd", data_dim=1, input_shape=(97,), in_channels=3, out_size=4)


def test_valid_config_and_derived_sizes():
    cfg = ModelConfig(**BASE)
    assert (cfg.n_blocks, cfg.n_channels) == (8, 280)
    assert ModelConfig(**{**BASE, "variant": "kr"}).n_channels == 140
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("variant", "kwrd", "valid choices: ['ccnn', 'k', 'kr', 'krwd']"),
        ("task", "segmentation", "valid choices: ['global', 'dense', 'retrieval']"),
        ("mode", "lazy", "valid choices: ['trim', 'virtual']"),
        ("data_dim", 3, "valid choices: [1, 2]"),
        ("input_shape", (32, 32), "tuple of 1 spatial sizes"),
        ("input_shape", (2,), "integer >= 3"),
        ("width", 300, "above max_width=280"),
        ("blocks", 9, "above max_blocks=8"),
        ("dropout", 1.0, "0 <= p < 1"),
        ("threshold", 0.7, "0 < T_m < 0.5"),
        ("out_size", 0, "out_size=0 is invalid"),
        ("tau_depth", -8.0, "tau_depth=-8.0 is invalid"),
    ],
)
def test_invalid_values_fail_with_a_clear_message(key, value, needle):
    with pytest.raises(ConfigError, match=None) as err:
        ModelConfig(**{**BASE, key: value})
    assert needle in str(err.value)


def test_inputs_exactly_one_kind():
    with pytest.raises(ConfigError, match="exactly one of in_channels"):
        ModelConfig(**{**BASE, "vocab_size": 10})
    with pytest.raises(ConfigError, match="retrieval"):
        ModelConfig(**{**BASE, "task": "retrieval"})


def test_unknown_keys_are_rejected():
    with pytest.raises(ConfigError, match=r"unknown keys \['widht'\]"):
        ModelConfig.from_dict({**BASE, "widht": 12})
