"""ModelConfig validation: invalid values fail at construction, listing the valid choices."""

import pytest

from implementations.common.config import ConfigError, ModelConfig, tiny_config

BASE = dict(variant="krwd", data_dim=1, input_shape=(97,), in_channels=3, out_size=4)


def test_valid_config_and_derived_sizes():
    cfg = ModelConfig(**BASE)
    assert (cfg.n_blocks, cfg.n_channels) == (8, 280)
    assert ModelConfig(**{**BASE, "variant": "kr"}).n_channels == 140
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    # where the paper is silent the defaults are the CCNN code's practice
    assert (cfg.kernel_scale, cfg.linear_init) == ("init", "ccnn")
    assert cfg.init_choices() == {"kernel_scale": "init", "linear_init": "ccnn"}
    old = ModelConfig(**BASE, kernel_scale="forward", linear_init="uniform")
    assert ModelConfig.from_dict(old.to_dict()) == old != cfg


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("variant", "kwrd", "valid choices: ['ccnn', 'k', 'kr', 'krwd']"),
        ("task", "segmentation", "valid choices: ['global', 'dense', 'retrieval']"),
        ("mode", "lazy", "valid choices: ['trim', 'virtual']"),
        ("kernel_scale", "per_step", "valid choices: ['init', 'forward']"),
        ("linear_init", "kaiming", "valid choices: ['ccnn', 'uniform']"),
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


def test_tiny_config_defaults_and_overrides():
    cfg = tiny_config()
    assert (cfg.variant, cfg.data_dim, cfg.input_shape, cfg.task) == ("krwd", 1, (33,), "global")
    assert (cfg.in_channels, cfg.vocab_size, cfg.out_size) == (2, None, 3)
    assert (cfg.blocks, cfg.width, cfg.n_blocks, cfg.n_channels) == (2, 4, 4, 8)
    grid = tiny_config("kr", (9, 7), task="dense", width=6, max_width=12, in_channels=1)
    assert (grid.data_dim, grid.input_shape, grid.width, grid.in_channels) == (2, (9, 7), 6, 1)
    tokens = tiny_config("ccnn", task="retrieval")
    assert (tokens.vocab_size, tokens.in_channels, tokens.out_size) == (11, None, 2)
    assert tiny_config(vocab_size=7).tokens and tiny_config(vocab_size=7).in_channels is None
