"""Recipe loading: validation errors, canonical form, hashing and path resolution."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from fergen.errors import RecipeError
from fergen.recipe import (bundled_recipes, find_recipe, load_recipe, load_recipe_text, recipe_from_dict,
                           resolve_data_root, resolve_path)

MINIMAL = {"version": 1, "faces": {"kind": "skimage"}, "backgrounds": {"kind": "skimage"}}


def with_change(path: str, value) -> dict:
    """Return MINIMAL with the dotted key ``path`` set to ``value``."""
    data = copy.deepcopy(MINIMAL)
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return data


def test_demo_recipe_loads_with_paper_defaults():
    recipe = load_recipe("demo")
    assert recipe.name == "demo"
    assert recipe.render.output_size == (128, 128)
    assert recipe.render.rotation_range == (-45.0, 45.0)
    assert recipe.render.translation == 0.3
    assert recipe.render.perspective == 0.1
    assert recipe.render.scale_range == (0.8, 1.2)
    assert recipe.render.luminance_clip == (0.5, 1.5)
    assert recipe.faces.mask.strategy == "auto"


def test_bundled_recipes_match_repository_copies():
    bundled = bundled_recipes()
    assert sorted(bundled) == ["demo", "lfw-demo"]
    for name, path in bundled.items():
        in_repo = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.yaml"
        assert path.read_text() == in_repo.read_text(), name
        assert load_recipe(name).name == name


def test_unknown_key_names_path_and_suggestion():
    with pytest.raises(RecipeError) as error:
        recipe_from_dict(with_change("render.rotaton_range", [0, 1]), "r.yaml")
    message = str(error.value)
    assert "r.yaml" in message
    assert "render.rotaton_range" in message
    assert "unknown key" in message
    assert "Did you mean 'rotation_range'?" in message


def test_wrong_type_names_key_value_and_expected():
    with pytest.raises(RecipeError) as error:
        recipe_from_dict(with_change("render.flip_probability", "often"))
    message = str(error.value)
    assert "render.flip_probability" in message
    assert "'often'" in message
    assert "a number" in message


def test_out_of_range_value_shows_allowed_range():
    with pytest.raises(RecipeError) as error:
        recipe_from_dict(with_change("render.flip_probability", 1.5))
    message = str(error.value)
    assert "render.flip_probability" in message
    assert "1.5" in message
    assert "[0, 1]" in message


def test_reversed_interval_is_rejected():
    with pytest.raises(RecipeError, match=r"render\.scale_range.*low <= high"):
        recipe_from_dict(with_change("render.scale_range", [1.2, 0.8]))


def test_tuple_length_is_checked():
    with pytest.raises(RecipeError, match=r"render\.output_size.*exactly 2 items"):
        recipe_from_dict(with_change("render.output_size", [128, 128, 3]))


def test_unknown_kind_lists_choices():
    with pytest.raises(RecipeError) as error:
        recipe_from_dict(with_change("faces.kind", "foldr"))
    assert "faces.kind" in str(error.value)
    assert "Did you mean 'folder'?" in str(error.value)


def test_kind_specific_keys_are_validated():
    with pytest.raises(RecipeError, match=r"faces\.subject_pattern.*one capture group"):
        recipe_from_dict({**MINIMAL, "faces": {"kind": "folder", "path": "x", "subject_pattern": "^S"}})


def test_missing_version_and_wrong_version():
    data = copy.deepcopy(MINIMAL)
    del data["version"]
    with pytest.raises(RecipeError, match="'version': missing"):
        recipe_from_dict(data)
    with pytest.raises(RecipeError, match="recipe version 1"):
        recipe_from_dict(with_change("version", 2))


def test_fold_index_must_be_below_count():
    data = with_change("faces.subjects", {"fold": {"index": 10, "count": 10}})
    with pytest.raises(RecipeError, match=r"faces\.subjects\.fold\.index"):
        recipe_from_dict(data)


def test_invalid_yaml_names_source():
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML"):
        load_recipe_text("version: [1\n", "bad.yaml")


def test_canonical_form_round_trips_to_same_hash():
    recipe = load_recipe("demo")
    again = load_recipe_text(recipe.canonical_yaml())
    assert again == recipe
    assert again.sha256 == recipe.sha256


def test_hash_stable_under_order_and_defaults():
    explicit = with_change("render.flip_probability", 0.5)
    reordered = dict(reversed(list(explicit.items())))
    base = recipe_from_dict(MINIMAL).sha256
    assert recipe_from_dict(explicit).sha256 == base
    assert recipe_from_dict(reordered).sha256 == base
    assert recipe_from_dict(with_change("seed", 1)).sha256 != base
    assert len(base) == 64


def test_recipe_file_not_found_lists_bundled():
    with pytest.raises(RecipeError, match=r"not found.*demo"):
        find_recipe("no-such-recipe.yaml")


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("FERGEN_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root() == (tmp_path / "env").resolve()
    assert resolve_data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    monkeypatch.delenv("FERGEN_DATA_ROOT")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root() == tmp_path.resolve()
    assert resolve_path("ck/images", tmp_path, "faces.path") == tmp_path / "ck/images"
    assert resolve_path(str(tmp_path / "abs"), Path("/elsewhere"), "faces.path") == tmp_path / "abs"


def test_yaml_file_on_disk(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(with_change("output.samples", 33)))
    recipe = load_recipe(path)
    assert recipe.output.samples == 33
    assert recipe.shard_count == 1


def test_class_list_errors():
    cases = [
        ([], r"faces\.classes': invalid value \[\]; expected at least one class"),
        ([{"name": "happy", "merge": ["anger"]}, "happy"], r"faces\.classes\[1\]': invalid value 'happy'.*already "
                                                           r"class 0"),
    ]
    for classes, message in cases:
        with pytest.raises(RecipeError, match=message):
            recipe_from_dict(with_change("faces.classes", classes))


def test_scientific_notation_strings_are_numbers():
    # YAML 1.1 reads 5e-2 (no dot) as a string; recipes accept it as the number it spells.
    recipe = load_recipe_text("version: 1\nfaces: {kind: skimage}\nbackgrounds: {kind: skimage}\n"
                              "render: {perspective: 5e-2}\n")
    assert recipe.render.perspective == 0.05
    with pytest.raises(RecipeError, match="render.perspective': invalid value 'five'"):
        recipe_from_dict(with_change("render.perspective", "five"))
    with pytest.raises(RecipeError, match="expected a finite number"):
        recipe_from_dict(with_change("render.perspective", "nan"))
