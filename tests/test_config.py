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


# ----------------------------------------------------------------------------- one declaration per field

from aelab.config import CONSTRAINTS, Interval, Options, Widths, field_problem, from_flat, rule, show  # noqa: E402

# Valid configs that switch every dependent range to each of its forms.
CONTEXTS = [{}, {"noise.kind": "gaussian", "noise.level": 0.3}, {"noise.kind": "masking", "noise.level": 0.1},
            {"noise.kind": "salt_pepper", "noise.level": 0.1}, {"sparsity.kind": "l1", "sparsity.weight": 0.1},
            {"train.strategy": "greedy", "train.finetune_epochs": 2}, {"model.kind": "conv", "model.layers": "16,8"}]


def edges(r: Interval, num):
    """(accepted, refused) values at each end of an interval, of the field's type."""
    eps = 1 if num is int else 1e-9
    ok, bad = [], ([float("nan"), float("inf")] if num is float else [])
    for end, closed, outward in ((r.lo, r.closed in ("both", "left"), -1), (r.hi, r.closed in ("both", "right"), 1)):
        if end is not None:
            inside, outside = (end, end + outward * eps) if closed else (end - outward * eps, end)
            ok.append(num(inside))
            bad.append(num(outside))
    return ok, bad


def test_every_field_is_declared():
    assert list(CONSTRAINTS) == list(flat_items(RunConfig()))


@pytest.mark.parametrize("ctx", CONTEXTS)
def test_numeric_ranges_are_what_validate_accepts(ctx):
    base = validate(RunConfig().with_overrides(ctx))
    for key in CONSTRAINTS:
        r, num = rule(base, key), type(flat_items(base)[key])
        if not isinstance(r, Interval):
            continue
        ok, bad = edges(r, num)
        for v in ok:
            assert validate(set_key(base, key, v)), (key, v)
        for v in bad:
            with pytest.raises(ValueError) as e:
                validate(set_key(base, key, v))
            # the message names the field, the value and the range
            assert str(e.value).startswith(f"{key}: {show(v)} is not accepted (accepted: {r.describe(key)}")


@pytest.mark.parametrize("ctx", CONTEXTS)
def test_choices_and_widths_are_what_validate_accepts(ctx):
    base = validate(RunConfig().with_overrides(ctx))
    for key in CONSTRAINTS:
        r = rule(base, key)
        if isinstance(r, Options):
            with pytest.raises(ValueError, match=f"{key}: 'bogus' is not accepted .accepted: one of {', '.join(r.values)}"):
                validate(set_key(base, key, "bogus"))
        if isinstance(r, Widths):
            for bad in ([0], [r.hi + 1], [8] * (r.max_len + 1)):
                assert field_problem(set_key(base, key, bad), key).startswith(f"{key}: {show(tuple(bad))} is not")
            assert validate(set_key(base, key, [r.hi] + [2] * (r.max_len - 1)))


def test_the_issue_examples():
    # values the old widgets clamped are accepted where the config accepts them, refused by name elsewhere
    validate(RunConfig().with_overrides({"sparsity.target": 0.7}))
    validate(RunConfig().with_overrides({"noise.kind": "gaussian", "noise.level": 1.5}))
    with pytest.raises(ValueError, match=r"noise\.level: 1\.5 is not accepted \(accepted: 0 < noise\.level < 1"):
        validate(RunConfig().with_overrides({"noise.kind": "masking", "noise.level": 1.5}))
    with pytest.raises(ValueError, match=r"train\.lr: -1 is not accepted \(accepted: 0 < train\.lr <= 10\)"):
        validate(RunConfig().with_overrides({"train.lr": -1}))


def test_from_flat_keeps_the_base_value_of_each_bad_value_and_names_it():
    base = RunConfig().with_overrides({"train.epochs": 7})
    cfg, problems = from_flat({"noise.level": "1.5", "noise.kind": "masking", "model.layers": "64,16",
                               "train.epochs": "ten", "train.lr": "-1", "model.colour": "red"}, base)
    assert (cfg.noise.kind, cfg.model.layers) == ("masking", (64, 16))  # the good values load
    assert (cfg.noise.level, cfg.train.epochs, cfg.train.lr) == (0.0, 7, base.train.lr)  # the bad keep base
    named = dict(problems)
    assert set(named) == {"noise.level", "train.epochs", "train.lr", "model.colour"}
    assert "1.5" in named["noise.level"] and "0 < noise.level < 1" in named["noise.level"]
    assert "'ten'" in named["train.epochs"] and "int" in named["train.epochs"]
    assert "'red'" in named["model.colour"] and "fields of model: kind, layers" in named["model.colour"]
    # a dependent range is judged against the values given, whatever their order
    assert from_flat({"noise.kind": "gaussian", "noise.level": "1.5"})[0].noise.level == 1.5
