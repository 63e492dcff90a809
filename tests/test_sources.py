"""Face and background sources on real files, including COCO through pycocotools."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from fergen.assets import build_face_table
from fergen.backgrounds import CocoBackgroundsConfig, FolderBackgroundsConfig, SkimageBackgroundsConfig
from fergen.errors import DataError, MissingDependencyError, RecipeError
from fergen.pipeline import Renderer
from fergen.recipe import recipe_from_dict
from testdata import TINY_COCO, face_on_black, small_recipe, write_rgb

# The 15 images of the tiny COCO train split that contain no person (crowd annotations included).
COCO_TRAIN_WITHOUT_PEOPLE = [
    "000000006818.jpg", "000000037777.jpg", "000000041888.jpg", "000000058636.jpg", "000000153299.jpg",
    "000000174482.jpg", "000000184321.jpg", "000000184791.jpg", "000000226111.jpg", "000000289393.jpg",
    "000000331352.jpg", "000000403385.jpg", "000000458054.jpg", "000000491497.jpg", "000000502136.jpg",
]

needs_coco = pytest.mark.skipif(not TINY_COCO.is_dir(),
                                reason=f"tiny COCO data not found at {TINY_COCO}; set FERGEN_TINY_COCO to its folder")


def test_folder_faces_labels_subjects_and_masks(face_folder, background_folder):
    recipe = recipe_from_dict(small_recipe(face_folder, background_folder))
    table = build_face_table(recipe, Path("/"), use_cache=False)
    assert len(table) == 12
    assert table.class_names == ("anger", "happy", "neutral")
    assert sorted(set(table.subjects)) == ["S000", "S001", "S002", "S003"]
    assert table.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert table.rgba.shape == (12, 64, 64, 4)
    # Padding of 4 px stays empty.
    assert table.rgba[:, :4, :, 3].max() == 0
    assert table.skipped == {}


def test_folder_faces_count_unmatched_names(face_folder, background_folder):
    write_rgb(face_folder / "happy" / "nosubject.png", face_on_black())
    write_rgb(face_folder / "stray.png", face_on_black())
    recipe = recipe_from_dict(small_recipe(face_folder, background_folder))
    source = recipe.faces.open(Path("/"))
    assert len(source.records()) == 12
    assert sorted(source.unmatched) == ["happy/nosubject.png", "stray.png"]


def test_class_merge_and_selection(face_folder, background_folder):
    data = small_recipe(face_folder, background_folder,
                        faces={"classes": ["neutral", {"name": "emotional", "merge": ["anger", "happy"]}],
                               "subjects": {"exclude": ["S003"]}})
    table = build_face_table(recipe_from_dict(data), Path("/"), use_cache=False)
    assert table.class_names == ("neutral", "emotional")
    assert np.bincount(table.labels).tolist() == [3, 6]
    assert "S003" not in table.subjects


def test_unknown_class_label_is_rejected(face_folder, background_folder):
    data = small_recipe(face_folder, background_folder, faces={"classes": ["happy", "joy"]})
    with pytest.raises(RecipeError, match="'joy' is not a label of this source"):
        build_face_table(recipe_from_dict(data), Path("/"), use_cache=False)


def test_subject_folds_are_disjoint(face_folder, background_folder):
    subjects = {}
    for part in ("train", "test"):
        data = small_recipe(face_folder, background_folder,
                            faces={"subjects": {"fold": {"index": 1, "count": 2, "part": part}}})
        subjects[part] = set(build_face_table(recipe_from_dict(data), Path("/"), use_cache=False).subjects)
    assert len(subjects["train"]) == 2
    assert len(subjects["test"]) == 2
    assert subjects["train"].isdisjoint(subjects["test"])


def test_missing_face_folder_error_names_path(tmp_path, background_folder):
    data = small_recipe(tmp_path / "nope", background_folder)
    with pytest.raises(DataError, match=r"faces.path: folder .*nope not found"):
        build_face_table(recipe_from_dict(data), Path("/"), use_cache=False)


def test_empty_face_folder_error(tmp_path, background_folder):
    (tmp_path / "empty").mkdir()
    data = small_recipe(tmp_path / "empty", background_folder)
    with pytest.raises(DataError, match="no face images found"):
        build_face_table(recipe_from_dict(data), Path("/"), use_cache=False)


def test_corrupt_face_and_undetectable_face_are_counted(face_folder, background_folder):
    (face_folder / "happy" / "S009_01.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    write_rgb(face_folder / "anger" / "S008_01.png", np.zeros((50, 50, 3), np.uint8))
    table = build_face_table(recipe_from_dict(small_recipe(face_folder, background_folder)), Path("/"),
                             use_cache=False)
    assert len(table) == 12
    assert table.skipped == {"unreadable image": 1, "mask empty": 1}
    assert sorted(face_id for face_id, _ in table.skipped_ids) == ["anger/S008_01.png", "happy/S009_01.png"]


def test_auto_mask_skips_photo_without_face(tmp_path, background_folder):
    write_rgb(tmp_path / "faces" / "happy" / "A_1.png", skimage.data.astronaut())
    write_rgb(tmp_path / "faces" / "happy" / "B_1.png", skimage.data.coffee())
    data = small_recipe(tmp_path / "faces", background_folder,
                        faces={"subject_pattern": "^([A-Z])_", "mask": {"strategy": "auto"}})
    table = build_face_table(recipe_from_dict(data), Path("/"), use_cache=False)
    assert table.ids == ["happy/A_1.png"]
    assert table.skipped == {"no face detected": 1}


def test_too_many_skipped_faces_stop_the_job(tmp_path, background_folder):
    for name in ("A_1", "B_1", "C_1"):
        write_rgb(tmp_path / "faces" / "happy" / f"{name}.png", skimage.data.coffee())
    write_rgb(tmp_path / "faces" / "happy" / "D_1.png", skimage.data.astronaut())
    data = small_recipe(tmp_path / "faces", background_folder,
                        faces={"subject_pattern": "^([A-Z])_", "mask": {"strategy": "auto"}})
    with pytest.raises(DataError, match=r"3 of 4 faces were skipped.*max_skipped_fraction"):
        build_face_table(recipe_from_dict(data), Path("/"), use_cache=False)


def test_csv_faces_with_mask_files(tmp_path, background_folder):
    face = face_on_black()
    write_rgb(tmp_path / "img" / "a.jpg", face)
    mask = (face.max(axis=2) > 10).astype(np.uint8) * 255
    write_rgb(tmp_path / "img" / "a_mask.png", np.repeat(mask[..., None], 3, axis=2))
    write_rgb(tmp_path / "img" / "b.jpg", face[:, ::-1])
    (tmp_path / "list.csv").write_text("path,label,subject,mask\nimg/a.jpg,happy,P1,img/a_mask.png\n"
                                       "img/b.jpg,sadness,P2,\n,happy,P3,\n")
    data = small_recipe(tmp_path, background_folder,
                        faces={"kind": "csv", "path": str(tmp_path / "list.csv"), "mask": {"strategy": "file"}})
    data["faces"].pop("subject_pattern")
    recipe = recipe_from_dict(data)
    source = recipe.faces.open(Path("/"))
    assert [record.subject for record in source.records()] == ["P1", "P2"]
    assert source.unmatched == ["line 4: empty path, label or subject"]
    # b.jpg has no mask file: with the file strategy it is skipped, and 1 of 2 is within the default limit.
    table = build_face_table(recipe, Path("/"), use_cache=False)
    assert table.ids == ["img/a.jpg"]
    assert table.skipped == {"mask file missing": 1}


def test_csv_missing_column(tmp_path, background_folder):
    (tmp_path / "list.csv").write_text("file,label\nx.png,happy\n")
    data = small_recipe(tmp_path, background_folder, faces={"kind": "csv", "path": str(tmp_path / "list.csv")})
    data["faces"].pop("subject_pattern")
    with pytest.raises(DataError, match=r"missing column\(s\) \['path', 'subject'\]"):
        recipe_from_dict(data).faces.open(Path("/")).records()


def test_folder_backgrounds_recursive_any_case(background_folder):
    source = FolderBackgroundsConfig(kind="folder", path=str(background_folder)).open(Path("/"))
    assert source.names == ["animals/chelsea.JPG", "bricks.bmp", "coffee.jpg", "space/hubble.Jpeg",
                            "space/rocket.png"]
    levels = source.load(2)
    assert levels[0].shape == (341, 512, 3)  # coffee 400x600 limited to 512 on the longer side
    assert levels[1].shape == (171, 256, 3)


def test_empty_and_missing_background_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    with pytest.raises(DataError, match=r"no photos in .*empty"):
        FolderBackgroundsConfig(kind="folder", path=str(tmp_path / "empty")).open(Path("/"))
    with pytest.raises(DataError, match=r"backgrounds.path: folder .*missing not found"):
        FolderBackgroundsConfig(kind="folder", path=str(tmp_path / "missing")).open(Path("/"))


def test_corrupt_background_is_skipped_and_counted(face_folder, tmp_path):
    backgrounds = tmp_path / "bg"
    write_rgb(backgrounds / "good.jpg", skimage.data.coffee())
    (backgrounds / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    renderer = Renderer(recipe_from_dict(small_recipe(face_folder, backgrounds)), "/", use_cache=False)
    backgrounds_used = {renderer.sample(index).metadata["background_id"] for index in range(12)}
    assert backgrounds_used == {"good.jpg"}
    hits = renderer.unreadable_backgrounds["broken.jpg"]
    assert hits >= 1
    # Every draw of the broken photo is counted, so a second renderer that has not seen it counts the same.
    again = Renderer(recipe_from_dict(small_recipe(face_folder, backgrounds)), "/", use_cache=False)
    for index in range(12):
        again.sample(index)
    assert again.unreadable_backgrounds == {"broken.jpg": hits}


def test_unreadable_background_limit(face_folder, tmp_path):
    backgrounds = tmp_path / "bg"
    write_rgb(backgrounds / "good.jpg", skimage.data.coffee())
    for index in range(3):
        (backgrounds / f"broken{index}.jpg").write_bytes(b"garbage")
    data = small_recipe(face_folder, backgrounds, backgrounds={"max_unreadable": 1})
    renderer = Renderer(recipe_from_dict(data), "/", use_cache=False)
    with pytest.raises(DataError, match=r"more than 1 unreadable photos.*max_unreadable"):
        for index in range(50):
            renderer.sample(index)


def test_single_background_works(face_folder, tmp_path):
    write_rgb(tmp_path / "one" / "only.png", skimage.data.rocket())
    renderer = Renderer(recipe_from_dict(small_recipe(face_folder, tmp_path / "one")), "/", use_cache=False)
    assert {renderer.sample(index).metadata["background_id"] for index in range(5)} == {"only.png"}


def test_skimage_backgrounds_reject_unknown_name():
    with pytest.raises(RecipeError, match=r"backgrounds.images\[1\].*'astronautt'"):
        recipe_from_dict({"version": 1, "faces": {"kind": "skimage"},
                          "backgrounds": {"kind": "skimage", "images": ["coffee", "astronautt"]}})
    source = SkimageBackgroundsConfig(kind="skimage", images=("brick",)).open(Path("/"))
    assert source.load(0)[0].shape == (512, 512, 3)


@needs_coco
def test_coco_excludes_people_including_crowds():
    config = CocoBackgroundsConfig(kind="coco", annotations=str(TINY_COCO / "annotations/instances_train2017.json"),
                                   images=str(TINY_COCO / "images/train2017"))
    source = config.open(Path("/"))
    assert source.names == COCO_TRAIN_WITHOUT_PEOPLE
    image = source.load(0)[0]
    assert image.dtype == np.uint8
    assert image.shape[2] == 3


@needs_coco
def test_coco_other_category_and_min_size():
    config = CocoBackgroundsConfig(kind="coco", annotations=str(TINY_COCO / "annotations/instances_train2017.json"),
                                   images=str(TINY_COCO / "images/train2017"),
                                   exclude_categories=("person", "car"), min_size=300)
    names = config.open(Path("/")).names
    # Car images 000000037777 and 000000174482 go; every remaining image is at least 300 px.
    assert names == [name for name in COCO_TRAIN_WITHOUT_PEOPLE
                     if name not in ("000000037777.jpg", "000000174482.jpg")]


@needs_coco
def test_coco_unknown_category_and_missing_file(tmp_path):
    config = CocoBackgroundsConfig(kind="coco", annotations=str(TINY_COCO / "annotations/instances_train2017.json"),
                                   images=str(TINY_COCO / "images/train2017"), exclude_categories=("persons",))
    with pytest.raises(DataError, match=r"\['persons'\] not in"):
        config.open(Path("/"))
    missing = CocoBackgroundsConfig(kind="coco", annotations=str(tmp_path / "none.json"),
                                    images=str(TINY_COCO / "images/train2017"))
    with pytest.raises(DataError, match="none.json not found"):
        missing.open(Path("/"))


def test_coco_without_pycocotools_names_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    (tmp_path / "images").mkdir()
    config = CocoBackgroundsConfig(kind="coco", annotations=str(tmp_path / "a.json"), images=str(tmp_path / "images"))
    with pytest.raises(MissingDependencyError, match=r"pip install 'fergen\[coco\]'"):
        config.open(Path("/"))


def test_sample_label_matches_its_face(face_folder, background_folder):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    data = small_recipe(face_folder, background_folder, sampling={"face_choice": "class-balanced"})
    renderer = Renderer(recipe_from_dict(data), "/", use_cache=False)
    faces = renderer.faces

    @settings(max_examples=40, deadline=None)
    @given(index=st.integers(0, 10**9), epoch=st.integers(0, 1000))
    def check(index, epoch):
        sample = renderer.sample(index, epoch)
        face = faces.ids.index(sample.metadata["face_id"])
        assert sample.label == int(faces.labels[face])
        assert sample.metadata["class_name"] == faces.class_names[sample.label]
        assert sample.metadata["subject"] == faces.subjects[face]

    check()


def test_skipped_fraction_is_checked_on_cache_hit(face_folder, background_folder, tmp_path):
    write_rgb(face_folder / "anger" / "S008_01.png", np.zeros((50, 50, 3), np.uint8))
    lenient = recipe_from_dict(small_recipe(face_folder, background_folder))
    build_face_table(lenient, Path("/"), cache_dir=tmp_path / "cache")
    strict = recipe_from_dict(small_recipe(face_folder, background_folder, sampling={"max_skipped_fraction": 0.0}))
    with pytest.raises(DataError, match=r"1 of 13 faces were skipped"):
        build_face_table(strict, Path("/"), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("faces-*.npz"))) == 1


def test_empty_class_is_warned(face_folder, background_folder, caplog):
    data = small_recipe(face_folder, background_folder, faces={"limit": 4})
    with caplog.at_level("WARNING", logger="fergen.assets"):
        table = build_face_table(recipe_from_dict(data), Path("/"), use_cache=False)
    assert table.labels.tolist() == [0, 0, 0, 0]
    assert "class(es) happy, neutral have no usable face" in caplog.text


def test_missing_mask_path_folder_is_named(face_folder, background_folder, tmp_path):
    data = small_recipe(face_folder, background_folder,
                        faces={"mask_path": str(tmp_path / "no-masks"), "mask": {"strategy": "file"}})
    with pytest.raises(DataError, match=r"faces.mask_path: folder .*no-masks not found"):
        recipe_from_dict(data).faces.open(Path("/"))


def test_default_skimage_backgrounds_have_no_people():
    from fergen.backgrounds import SKIMAGE_PHOTOS

    # camera (the cameraman) and astronaut show people; cat repeats chelsea.
    assert not {"camera", "astronaut", "cat"} & set(SKIMAGE_PHOTOS)
    assert len(SKIMAGE_PHOTOS) == 11
