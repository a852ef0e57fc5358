"""Config: presets, strict overrides from YAML and --set, round trip through a plain dict."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_vqvae.config import (
    ConfigError,
    ModelConfig,
    PriorExperiment,
    apply_overrides,
    experiment_config,
    load_overrides,
    merge,
    parse_assignments,
    preset,
    to_dict,
)


def test_default_preset_is_the_defaults_and_paper_is_the_published_model():
    assert preset("default") == ModelConfig()
    cfg = preset("paper")
    # The paper's training choices: codebook learned by its loss, Euclidean lookup, no extras.
    q = cfg.quantizer
    assert (q.ema_decay, q.kmeans_init, q.revive_dead_codes, q.batch_norm, q.cosine_similarity) == (
        None,
        False,
        False,
        False,
        False,
    )
    assert cfg.mel_loss_weight is None and not cfg.encoder.layer_norm
    # Only those choices differ from the defaults: the sizes are the paper's in both.
    default = ModelConfig()
    assert cfg.decoder == default.decoder and cfg.encoder.strides == default.encoder.strides
    assert (q.codebook_size, q.dim) == (default.quantizer.codebook_size, default.quantizer.dim)
    assert cfg.encoder.strides == (2,) * 6 and cfg.quantizer.codebook_size == 512
    assert cfg.quantizer.commitment_weight == 0.25
    d = cfg.decoder
    assert (d.n_stacks * d.layers_per_stack, d.residual_channels, d.gate_channels, d.skip_channels) == (
        30,
        128,
        256,
        128,
    )


def test_tiny_preset_differs_only_where_it_says():
    tiny = preset("tiny")
    assert tiny.decoder.residual_channels == 8
    assert tiny.encoder.strides == ModelConfig().encoder.strides
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")


def test_unknown_key_is_rejected_with_its_dotted_name():
    with pytest.raises(ConfigError, match="'decoder.n_layer'"):
        apply_overrides(ModelConfig(), {"decoder": {"n_layer": 3}})
    with pytest.raises(ConfigError, match="'bogus'"):
        apply_overrides(ModelConfig(), {"bogus": 1})


@pytest.mark.parametrize(
    "override, key",
    [
        ({"decoder": {"n_stacks": "three"}}, "decoder.n_stacks"),
        ({"decoder": {"n_stacks": 2.5}}, "decoder.n_stacks"),
        ({"quantizer": {"kmeans_init": 1}}, "quantizer.kmeans_init"),
        ({"encoder": {"strides": 2}}, "encoder.strides"),
        ({"encoder": {"strides": [2, "x"]}}, "encoder.strides[1]"),
        ({"encoder": 3}, "encoder"),
    ],
)
def test_wrong_types_are_rejected_with_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        apply_overrides(ModelConfig(), override)


def test_coercions_lists_ints_and_none():
    cfg = apply_overrides(
        ModelConfig(),
        {"encoder": {"strides": [5, 4, 4, 4]}, "quantizer": {"ema_decay": 0.99, "commitment_weight": 1}},
    )
    assert cfg.encoder.strides == (5, 4, 4, 4)
    assert isinstance(cfg.quantizer.commitment_weight, float)
    back = apply_overrides(cfg, {"quantizer": {"ema_decay": None}})
    assert back.quantizer.ema_decay is None and cfg.quantizer.ema_decay == 0.99  # copies, not mutation


def test_dict_round_trip_rebuilds_the_same_config():
    cfg = apply_overrides(preset("tiny"), {"encoder": {"strides": [5, 4]}, "jitter_probability": 0.12})
    assert apply_overrides(ModelConfig(), to_dict(cfg)) == cfg


def test_set_assignments_and_yaml_files(tmp_path):
    sets = parse_assignments(["decoder.n_stacks=2", "encoder.strides=[5,4,4,4]", "quantizer.ema_decay=null"])
    assert sets == {"decoder": {"n_stacks": 2}, "encoder": {"strides": [5, 4, 4, 4]}, "quantizer": {"ema_decay": None}}
    f = tmp_path / "conf.yaml"
    f.write_text("decoder:\n  n_stacks: 1\n  residual_channels: 16\n")
    merged = merge(load_overrides(f), sets)
    cfg = apply_overrides(ModelConfig(), merged)
    assert cfg.decoder.n_stacks == 2 and cfg.decoder.residual_channels == 16
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["decoder.n_stacks"])
    (tmp_path / "empty.yaml").write_text("")
    assert load_overrides(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="list.yaml"):
        load_overrides(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_overrides(tmp_path / "missing.yaml")


def test_experiment_config_and_literal_choices():
    from audio_vqvae.config import experiment_config

    cfg = experiment_config("tiny", {"train": {"precision": "bf16"}, "model": {"decoder": {"n_stacks": 1}}})
    assert cfg.model.decoder.residual_channels == 8 and cfg.model.decoder.n_stacks == 1
    assert cfg.train.precision == "bf16"
    with pytest.raises(ConfigError, match="train.precision.*fp32, bf16, fp16"):
        experiment_config("tiny", {"train": {"precision": "fp8"}})
    assert apply_overrides(type(cfg)(), to_dict(cfg)) == cfg


def test_floats_written_as_3e_4_are_floats(tmp_path):
    from audio_vqvae.config import experiment_config

    # YAML 1.1 reads 3e-4 (no dot) as a string: "must be float, got '3e-4'" before
    sets = parse_assignments(["optim.lr=3e-4", "model.quantizer.ema_decay=1e0"])
    f = tmp_path / "conf.yaml"
    f.write_text("optim:\n  lr: 3e-4\n")
    for overrides in (sets, load_overrides(f)):
        cfg = experiment_config("tiny", overrides)
        assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)
    assert experiment_config("tiny", sets).model.quantizer.ema_decay == 1.0
    for bad in ("fast", "nan", "inf", "3e-4x"):
        with pytest.raises(ConfigError, match="optim.lr"):
            experiment_config("tiny", {"optim": {"lr": bad}})
    with pytest.raises(ConfigError, match="decoder.n_stacks"):  # ints stay strict
        experiment_config("tiny", {"model": {"decoder": {"n_stacks": "2"}}})


@pytest.mark.parametrize(
    "override, message",
    [
        ({"train": {"checkpoint_every": 0}}, "'train.checkpoint_every' must be >= 1, got 0"),
        ({"train": {"log_every": 0}}, "'train.log_every' must be >= 1, got 0"),
        ({"train": {"valid_every": -2}}, "'train.valid_every' must be >= 1, got -2"),
        ({"train": {"audio_every": 0}}, "'train.audio_every' must be >= 1 or null, got 0"),
        ({"train": {"steps": 0}}, "'train.steps' must be >= 1, got 0"),
        ({"data": {"batch_size": 0}}, "'data.batch_size' must be >= 1"),
        ({"model": {"decoder": {"n_stacks": 0}}}, "'model.decoder.n_stacks' must be >= 1, got 0"),
        ({"model": {"decoder": {"layers_per_stack": 0}}}, "'model.decoder.layers_per_stack' must be >= 1"),
        ({"model": {"decoder": {"residual_channels": 0}}}, "'model.decoder.residual_channels' must be >= 1"),
        ({"model": {"encoder": {"strides": [2, 0]}}}, r"'model.encoder.strides' must be >= 1 \(each\)"),
        ({"model": {"encoder": {"channels": 0}}}, "'model.encoder.channels' must be >= 1"),
        ({"model": {"quantizer": {"codebook_size": 0}}}, "'model.quantizer.codebook_size' must be >= 1"),
    ],
)
def test_sizes_and_periods_below_their_minimum_are_refused_naming_the_key(override, message):
    from audio_vqvae.config import experiment_config

    with pytest.raises(ConfigError, match=message):
        experiment_config("tiny", override)


def test_null_and_zero_stay_legal_where_they_mean_something():
    from audio_vqvae.config import experiment_config, validate

    cfg = experiment_config(
        "tiny",
        {
            "train": {"audio_every": None, "keep_checkpoints": 0},
            "data": {"num_workers": 0},
            "model": {"encoder": {"n_residual_layers": 0}, "decoder": {"n_cond_layers": 0}},
        },
    )
    validate(cfg)
    for name in ("default", "paper", "tiny"):
        validate(experiment_config(name))


def test_validate_checks_a_config_built_in_code():
    import dataclasses

    from audio_vqvae.config import experiment_config, validate

    cfg = experiment_config("tiny")
    bad = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, valid_every=0))
    with pytest.raises(ConfigError, match="'train.valid_every' must be >= 1"):
        validate(bad)


def _assert_applied(cfg, overrides, where):
    for key, value in overrides.items():
        got = getattr(cfg, key)
        if isinstance(value, dict):
            _assert_applied(got, value, f"{where}.{key}")
        else:
            assert (list(got) if isinstance(got, tuple) else got) == value, f"{where}.{key}"


@pytest.mark.parametrize("path", sorted(Path("recipes").glob("*/conf/*.yaml")), ids=str)
def test_every_shipped_recipe_config_resolves_with_the_preset_its_recipe_uses(path):
    # run.sh picks the preset: tiny for the demo and the debug configurations, default otherwise.
    # prior*.yaml configure the code prior (train-prior), whose defaults are PriorExperiment's.
    name = "tiny" if path.parts[1] == "demo" or path.stem == "debug" else "default"
    overrides = load_overrides(path)
    if path.stem.startswith("prior"):
        cfg, base = apply_overrides(PriorExperiment(), overrides), to_dict(PriorExperiment())
    else:
        cfg, base = experiment_config(name, overrides), to_dict(experiment_config(name))  # misspelt keys raise
    _assert_applied(cfg, overrides, str(path))
    # Only overrides belong in a recipe's conf/: none repeats its preset's own value.
    for section, values in overrides.items():
        for key, value in values.items():
            if not isinstance(value, dict):
                assert base[section][key] != value, f"{path}: {section}.{key} repeats the default {value!r}"
