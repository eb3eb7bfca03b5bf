"""The dataset TOML validator (sd-scripts' config_util schema from sd_scripts_args.json).

tests/test_kohya_sd_scripts.py runs the same cases through sd-scripts' own ConfigSanitizer when it is available
and checks that both agree.
"""

from __future__ import annotations

import pytest

from orchestrator.kohya.dataset_schema import check_dataset_config, dataset_kind

GOOD = {
    "general": {"shuffle_caption": True, "caption_extension": ".txt", "keep_tokens": 2},
    "datasets": [{"resolution": 512, "batch_size": 4, "subsets": [
        {"image_dir": "dataset/1_punk", "num_repeats": 1, "class_tokens": "punk"}]}],
}

# (id, config, expected one-line problems; None = valid). Shared with the sd-scripts agreement test.
CASES = [
    ("good", GOOD, None),
    ("empty", {}, None),
    ("pair resolution", {"datasets": [{"resolution": [512, 768], "subsets": [{"image_dir": "a"}]}]}, None),
    ("fine tuning", {"datasets": [{"subsets": [{"metadata_file": "meta.json", "image_dir": "a"}]}]}, None),
    ("int dropout rate", {"general": {"caption_dropout_rate": 0}}, None),
    ("float pair", {"general": {"face_crop_aug_range": [1.0, 2.0]}}, None),
    ("unknown top level", {"generals": {}},
     ["generals: unknown top-level key (did you mean general?) (hint: a dataset config has only [general] and "
      "[[datasets]])"]),
    ("unknown general key", {"general": {"shuffle_captions": True}},
     ["general.shuffle_captions: unknown key (did you mean shuffle_caption?)"]),
    ("unknown subset key", {"datasets": [{"subsets": [{"image_dir": "a", "num_repeat": 2}]}]},
     ["datasets[0].subsets[0].num_repeat: unknown key (did you mean num_repeats?)"]),
    ("dataset-only key in a subset", {"datasets": [{"subsets": [{"image_dir": "a", "resolution": 512}]}]},
     ["datasets[0].subsets[0].resolution: unknown key (hint: sd-scripts' dataset config does not have this key)"]),
    ("missing image_dir", {"datasets": [{"subsets": [{"num_repeats": 2}]}]},
     [("datasets[0].subsets[0]: missing required key 'image_dir' (hint: add image_dir = … to this table (the folder of "
       "the subset's images))")]),
    ("string resolution", {"datasets": [{"resolution": "512,512", "subsets": []}]},
     [("datasets[0].resolution: expected an integer or an array of 2 (an integer each), got string '512,512' (hint: "
       "the dataset config format: docs/config_README-en.md in sd-scripts)")]),
    ("one-element resolution", {"datasets": [{"resolution": [512], "subsets": []}]},
     [("datasets[0].resolution: expected an integer or an array of 2 (an integer each), got array (hint: the dataset "
       "config format: docs/config_README-en.md in sd-scripts)")]),
    ("float batch size", {"datasets": [{"batch_size": 4.0, "subsets": []}]},
     [("datasets[0].batch_size: expected an integer, got float 4.0 (hint: the dataset config format: "
       "docs/config_README-en.md in sd-scripts)")]),
    ("int network_multiplier", {"general": {"network_multiplier": 1}},
     [("general.network_multiplier: expected a float (write 1.0, not 1), got integer 1 (hint: the dataset config "
       "format: docs/config_README-en.md in sd-scripts)")]),
    ("int validation_split", {"general": {"validation_split": 0}},
     [("general.validation_split: expected a float (write 1.0, not 1), got integer 0 (hint: the dataset config format: "
       "docs/config_README-en.md in sd-scripts)")]),
    ("int pair", {"general": {"face_crop_aug_range": [1, 2]}},
     [("general.face_crop_aug_range: expected an array of 2 (a float (write 1.0, not 1) each), got array (hint: the "
       "dataset config format: docs/config_README-en.md in sd-scripts)")]),
    ("string flag", {"general": {"shuffle_caption": "yes"}},
     [("general.shuffle_caption: expected true or false, got string 'yes' (hint: the dataset config format: "
       "docs/config_README-en.md in sd-scripts)")]),
    ("datasets not an array", {"datasets": {"subsets": []}},
     [("datasets: expected an array of tables ([[datasets]]), got table (hint: the dataset config format: "
       "docs/config_README-en.md in sd-scripts)")]),
    ("subsets not an array", {"datasets": [{"subsets": {"image_dir": "a"}}]},
     [("datasets[0].subsets: expected an array of tables, got table (hint: the dataset config format: "
       "docs/config_README-en.md in sd-scripts)")]),
    ("mixed kinds", {"datasets": [{"subsets": [{"image_dir": "a"}, {"metadata_file": "m.json"}]}]},
     ["datasets[0]: mixes fine-tuning subsets (with metadata_file) and DreamBooth subsets (without) (hint: sd-scripts "
      "needs one kind per dataset: put them in separate [[datasets]])"]),
    ("controlnet without support", {"datasets": [{"subsets": [{"image_dir": "a", "conditioning_data_dir": "c"}]}]},
     ["datasets[0].subsets[0].conditioning_data_dir: unknown key (hint: sd-scripts' dataset config does not have "
      "this key)"]),
]


@pytest.mark.parametrize(("config", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cases(config, expected):
    problems = check_dataset_config(config)
    assert [p.one_line() for p in problems] == (expected or [])
    assert all(p.is_error for p in problems)


def test_source_and_prefix_are_used():
    problems = check_dataset_config({"general": {"keep_tokenz": 1}}, source="dataset.toml", key_prefix="dataset_toml")
    assert [p.one_line() for p in problems] == [
        "dataset.toml: dataset_toml.general.keep_tokenz: unknown key (did you mean keep_tokens?)"]


def test_bool_is_not_an_integer_here():
    # voluptuous would accept True for an int (bool subclasses int); we refuse it
    problems = check_dataset_config({"general": {"keep_tokens": True}})
    assert [p.one_line() for p in problems] == [("general.keep_tokens: expected an integer, got boolean True (hint: "
                                                 "the dataset config format: docs/config_README-en.md in sd-scripts)")]


def test_controlnet_when_supported():
    config = {"datasets": [{"subsets": [{"image_dir": "a", "conditioning_data_dir": "c"}]}]}
    assert check_dataset_config(config, support_controlnet=True) == []
    assert dataset_kind([{"image_dir": "a"}]) == "dreambooth"
    assert dataset_kind([{"metadata_file": "m"}]) == "fine_tuning"
    assert dataset_kind([{"metadata_file": "m"}, {"image_dir": "a"}]) is None
    assert dataset_kind([], support_controlnet=True) == "controlnet"
