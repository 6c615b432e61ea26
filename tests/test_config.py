import pytest

from aelab.config import RunConfig, flat_items, set_key, validate, validate_for_data


def test_defaults_validate_and_round_trip_through_dict():
    cfg = RunConfig()
    assert validate(cfg) is cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_dotted_overrides_are_coerced_to_field_types():
    cfg = RunConfig().with_overrides({"model.layers": "100, 30", "model.tied": "true", "train.epochs": "7",
                                      "noise.level": "0.25"})
    assert cfg.model.layers == (100, 30) and cfg.model.tied is True
    assert cfg.train.epochs == 7 and cfg.noise.level == 0.25
    assert flat_items(cfg)["model.layers"] == (100, 30)


@pytest.mark.parametrize("key,value,field", [
    ("model.foo", "1", "model.foo"),
    ("nosection.x", "1", "nosection.x"),
    ("train.epochs", "ten", "train.epochs"),
    ("model.layers", "a,b", "model.layers"),
    ("model.tied", "maybe", "model.tied"),
])
def test_bad_keys_and_values_name_the_field(key, value, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        set_key(RunConfig(), key, value)


@pytest.mark.parametrize("overrides,field", [
    ({"model.kind": "rnn"}, "model.kind"),
    ({"model.layers": "0"}, "model.layers"),
    ({"model.activation": "gelu"}, "model.activation"),
    ({"noise.kind": "gaussian"}, "noise.level"),
    ({"noise.kind": "masking", "noise.level": 1.5}, "noise.level"),
    ({"sparsity.kind": "kl", "sparsity.weight": 0.1}, "sparsity.kind"),  # relu code cannot do KL
    ({"sparsity.kind": "kl", "sparsity.weight": 0.1, "model.activation": "sigmoid", "sparsity.target": 1.0},
     "sparsity.target"),
    ({"sparsity.kind": "l1"}, "sparsity.weight"),
    ({"contractive.weight": -1}, "contractive.weight"),
    ({"train.strategy": "magic"}, "train.strategy"),
    ({"train.epochs": 0}, "train.epochs"),
    ({"train.finetune_epochs": 3}, "train.finetune_epochs"),  # end_to_end has no fine-tune phase
    ({"train.lr": 0}, "train.lr"),
    ({"train.batch_size": 0}, "train.batch_size"),
    ({"train.loss": "bce", "model.output_activation": "linear"}, "model.output_activation"),
    ({"data.name": "imagenet"}, "data.name"),
    ({"data.name": "file"}, "data.path"),
])
def test_each_bad_config_raises_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        validate(RunConfig().with_overrides(overrides))


def test_unknown_section_in_dict_is_an_error():
    with pytest.raises(ValueError, match="unknown config section 'modle'"):
        RunConfig.from_dict({"modle": {"layers": [3]}})


def test_data_dependent_rules():
    with pytest.raises(ValueError, match="model.kind"):
        validate_for_data(RunConfig().with_overrides({"model.kind": "conv"}), "tabular", 0, 1)
    with pytest.raises(ValueError, match="train.loss"):
        validate_for_data(RunConfig(), "tabular", -2.0, 3.0)
    validate_for_data(RunConfig().with_overrides({"train.loss": "mse"}), "tabular", -2.0, 3.0)
