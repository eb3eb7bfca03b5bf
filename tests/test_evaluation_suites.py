"""Prompt suites: the shipped files, validation with file and key named, the content hash, recording."""

from __future__ import annotations

import pytest

from orchestrator.errors import InputError, NotFoundError
from orchestrator import suites
from orchestrator.evaluation.suites import record_suite

IMPROVED = [
    "pixel art, 24x24, portrait of bespoke punk lady, blonde hair, mouth corners turned up in gentle slight smile, "
    "green background",
    "pixel art, 24x24, portrait of bespoke punk lad, brown hair, mouth in straight neutral line with relaxed "
    "expression, blue background",
    "pixel art, 24x24, portrait of bespoke punk lady, tightly coiled curly textured hair with high volume, slight "
    "smile, green background",
]


def test_shipped_suites_load():
    names = {s.name for s in suites.list_suites()}
    assert {"bespoke_punks_8", "improved_3"} <= names
    punks = suites.load_suite("bespoke_punks_8")
    assert [p.name for p in punks.prompts] == [
        "brown_eyes_lady", "brown_eyes_lad", "blue_eyes_lady", "green_eyes_lad", "afro_hair", "sunglasses",
        "earrings", "baseball_cap"]
    assert all(p.text.startswith(("pixel art, 24x24, portrait of bespoke punk lady, ",
                                  "pixel art, 24x24, portrait of bespoke punk lad, ")) for p in punks.prompts)
    assert all(p.seeds for p in punks.prompts)
    assert len(punks.items()) == 16


def test_improved_3_is_verbatim():
    assert [p.text for p in suites.load_suite("improved_3").prompts] == IMPROVED


def write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


GOOD = '[suite]\nname = "x"\n\n[[prompts]]\nname = "a"\ntext = "t"\nseeds = [1]\n'


def test_unknown_keys_name_file_and_key(tmp_path):
    path = write(tmp_path, GOOD.replace("seeds = [1]", "seed = [1]"))
    with pytest.raises(InputError) as error:
        suites.load_suite_file(path)
    assert str(error.value) == f"{path}: unknown key 'prompts[0].seed' (hint: did you mean 'seeds'?)"
    path = write(tmp_path, GOOD.replace('name = "x"', 'name = "x"\nstep = 3'))
    with pytest.raises(InputError, match=r"s\.toml: unknown key 'suite\.step' \(hint: did you mean 'steps'"):
        suites.load_suite_file(path)
    path = write(tmp_path, GOOD + "[extra]\n")
    with pytest.raises(InputError, match="unknown key 'extra'"):
        suites.load_suite_file(path)


@pytest.mark.parametrize("change, message", [
    (("seeds = [1]", "seeds = []"), "seeds must be a non-empty list"),
    (("seeds = [1]", "seeds = [1, 1]"), "duplicates"),
    (("seeds = [1]", 'seeds = ["1"]'), "non-negative integers"),
    (('text = "t"', "text = 3"), "prompts\\[0\\].text must be str"),
    (('text = "t"\n', ""), "has no 'text'"),
])
def test_invalid_values(tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        suites.load_suite_file(write(tmp_path, GOOD.replace(*change)))


def test_missing_suite_is_not_found():
    with pytest.raises(NotFoundError, match="bespoke_punks_8"):
        suites.load_suite("nope")


def test_hash_ignores_comments_but_not_seeds(tmp_path):
    a = suites.load_suite_file(write(tmp_path, GOOD)).content_sha256
    assert suites.load_suite_file(write(tmp_path, "# note\n" + GOOD)).content_sha256 == a
    assert suites.load_suite_file(write(tmp_path, GOOD.replace("[1]", "[2]"))).content_sha256 != a


def test_record_suite_once_and_refuse_changes(store, tmp_path):
    suite = suites.load_suite("improved_3")
    ids = record_suite(store, suite)
    assert list(ids) == [p.name for p in suite.prompts]
    assert record_suite(store, suite) == ids
    changed = suites.parse_suite({"suite": {"name": "improved_3"},
                                  "prompts": [{"name": "a", "text": "t", "seeds": [1]}]})
    with pytest.raises(InputError, match="different prompts"):
        record_suite(store, changed)
