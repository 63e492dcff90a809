"""The two FERAtt recipes, validated and rendered against tiny CK+ and BU-3DFE trees."""

from __future__ import annotations

from collections import Counter

import pytest

from fergen.backgrounds import SkimageBackgroundsConfig
from fergen.pipeline import Renderer
from fergen.recipe import load_recipe
from fergen.selection import plan_folds, select_faces
from testdata import REPO_ROOT

from .trees import ckplus_paper_sequences, make_bu3dfe, make_ckplus

CKPLUS_RECIPE = REPO_ROOT / "recipes" / "ckplus-synthetic.yaml"
BU3DFE_RECIPE = REPO_ROOT / "recipes" / "bu3dfe-synthetic.yaml"
BU_SUBJECTS = [f"F{number:04d}" for number in range(1, 7)] + [f"M{number:04d}" for number in range(1, 7)]


@pytest.fixture(scope="module")
def ckplus_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_ckplus(root / "CK+", ckplus_paper_sequences(40))
    return root


@pytest.fixture(scope="module")
def bu3dfe_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_bu3dfe(root / "BU-3DFE", BU_SUBJECTS, faces_on_black=True)
    return root


def with_skimage_backgrounds(recipe):
    return recipe.replace(backgrounds=SkimageBackgroundsConfig(kind="skimage", images=("coffee",)))


def test_ckplus_recipe_selects_protocol(ckplus_root):
    recipe = load_recipe(CKPLUS_RECIPE)
    source = recipe.faces.open(ckplus_root)

    plan = plan_folds(recipe.faces, source, recipe.seed)
    selection = select_faces(recipe.faces, source, recipe.seed)

    assert plan.candidates.class_names == ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness",
                                           "surprise")
    assert len(plan.candidates.index) == 40 + 33
    assert Counter(plan.candidates.index.labels.tolist())["neutral"] == 33
    assert plan.count == 12
    assert sorted(len(plan.subjects(fold)) for fold in range(12)) == [3] * 8 + [4] * 4
    test_subjects = set(plan.subjects(0))
    train_subjects = {record.subject for record in selection.records}
    assert train_subjects.isdisjoint(test_subjects)
    assert len(train_subjects | test_subjects) == 40
    assert len(selection.records) == 73 - int(plan.test_mask(0).sum())
    assert source.unmatched == []
    assert source.index().stats["unlabelled_sequences"] == 1


def test_bu3dfe_recipe_selects_protocol(bu3dfe_root):
    recipe = load_recipe(BU3DFE_RECIPE)
    source = recipe.faces.open(bu3dfe_root)

    plan = plan_folds(recipe.faces, source, recipe.seed)
    selection = select_faces(recipe.faces, source, recipe.seed)

    assert plan.candidates.class_names == ("neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise")
    assert len(plan.candidates.index) == 12 * 7
    assert set(plan.candidates.index.meta["intensity"].tolist()) == {0, 4}
    assert plan.count == 10
    assert sorted(len(plan.subjects(fold)) for fold in range(10)) == [1] * 8 + [2] * 2
    assert all(sum(plan.class_counts(fold).values()) == 7 * len(plan.subjects(fold)) for fold in range(10))
    assert len(selection.records) == 7 * (12 - len(plan.subjects(0)))
    assert not {record.subject for record in selection.records} & set(plan.subjects(0))


@pytest.mark.parametrize("recipe_path, root_fixture", [(CKPLUS_RECIPE, "ckplus_root"),
                                                       (BU3DFE_RECIPE, "bu3dfe_root")])
def test_paper_recipe_renders_sample(recipe_path, root_fixture, request, tmp_path):
    data_root = request.getfixturevalue(root_fixture)
    recipe = with_skimage_backgrounds(load_recipe(recipe_path))
    test_subjects = set(plan_folds(recipe.faces, recipe.faces.open(data_root), recipe.seed).subjects(0))

    renderer = Renderer(recipe, data_root, cache_dir=tmp_path)
    sample = renderer.sample(0)

    assert renderer.faces.skipped == {}
    assert set(renderer.faces.subjects).isdisjoint(test_subjects)
    assert sample.metadata["class_name"] == recipe.faces.class_specs()[sample.metadata["label"]].name
    assert sample.composite.shape == (128, 128, 3)
