"""``fergen folds`` run through click's CliRunner on the command object."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from fergen.cli_folds import folds

from .trees import make_kdef, write_fer2013, fer_row

KDEF_NAMES = [f"{session}{gender}{number:02d}{code}S.JPG" for session in "AB" for gender in "FM"
              for number in range(1, 4) for code in ("AN", "HA", "NE")]


def write_recipe(path, faces):
    path.write_text(yaml.safe_dump({"version": 1, "seed": 4, "faces": faces,
                                    "backgrounds": {"kind": "skimage"}}), encoding="utf-8")
    return path


def test_folds_prints_table_and_writes_json(tmp_path):
    make_kdef(tmp_path / "KDEF", KDEF_NAMES)
    (tmp_path / "KDEF" / "AF01" / "AF01.txt").write_text("notes")
    (tmp_path / "KDEF" / "AF01" / "AF01XXS.JPG").write_bytes(b"")
    recipe = write_recipe(tmp_path / "kdef.yaml", {"kind": "kdef", "path": "KDEF",
                                                   "subjects": {"fold": {"index": 0, "count": 3}}})

    result = CliRunner().invoke(folds, [str(recipe), "--data-root", str(tmp_path),
                                        "--json", str(tmp_path / "out" / "folds.json")])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "source kdef KDEF: 36 faces of 6 subjects"
    assert lines[2] == "3 folds, permutation seed 4, stratified by class"
    assert lines[4].split() == ["fold", "subjects", "faces", "neutral", "anger", "happy"]
    assert [line.split()[1:3] for line in lines[5:8]] == [["2", "12"]] * 3
    assert lines[8].split() == ["total", "6", "36", "12", "12", "12"]
    assert "unmatched files: 1" in lines
    assert "  AF01/AF01XXS.JPG (name does not match AF01/AF01ANS.JPG)" in lines
    report = json.loads((tmp_path / "out" / "folds.json").read_text())
    fold_subjects = [fold["subjects"] for fold in report["folds"]]
    assert sorted(subject for subjects in fold_subjects for subject in subjects) == [
        "F01", "F02", "F03", "M01", "M02", "M03"]
    assert [fold["class_counts"] for fold in report["folds"]] == [{"neutral": 4, "anger": 4, "happy": 4}] * 3
    assert report["source"]["split_by_image"] is False
    assert f"fold 0 subjects: {' '.join(fold_subjects[0])}" in lines


def test_folds_notes_split_by_image(tmp_path):
    rows = [fer_row(code % 7, code, "Training") for code in range(6)]
    write_fer2013(tmp_path / "fer2013.csv", rows)
    recipe = write_recipe(tmp_path / "fer.yaml", {"kind": "fer2013", "path": "fer2013.csv",
                                                  "subjects": {"fold": {"index": 0, "count": 2}}})

    result = CliRunner().invoke(folds, [str(recipe), "--data-root", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "source fer2013 fer2013.csv: 6 faces of 6 images" in result.output
    assert "folds split by image" in result.output


def test_folds_without_fold_settings(tmp_path):
    make_kdef(tmp_path / "KDEF", KDEF_NAMES)
    recipe = write_recipe(tmp_path / "kdef.yaml", {"kind": "kdef", "path": "KDEF"})

    result = CliRunner().invoke(folds, [str(recipe), "--data-root", str(tmp_path)])

    assert result.exit_code == 2
    assert "error: recipe key 'faces.subjects.fold': missing" in result.output


def test_folds_missing_dataset(tmp_path):
    recipe = write_recipe(tmp_path / "kdef.yaml", {"kind": "kdef", "path": "KDEF",
                                                   "subjects": {"fold": {"index": 0, "count": 3}}})

    result = CliRunner().invoke(folds, [str(recipe), "--data-root", str(tmp_path)])

    assert result.exit_code == 2
    assert f"error: faces.path: folder {tmp_path / 'KDEF'} not found" in result.output


def test_folds_count_option_without_fold_settings(tmp_path):
    make_kdef(tmp_path / "KDEF", KDEF_NAMES)
    recipe = write_recipe(tmp_path / "kdef.yaml", {"kind": "kdef", "path": "KDEF"})

    result = CliRunner().invoke(folds, [str(recipe), "--data-root", str(tmp_path), "--count", "2",
                                        "--json", str(tmp_path / "folds.json")])

    assert result.exit_code == 0, result.output
    assert "2 folds, permutation seed 4, stratified by class" in result.output
    report = json.loads((tmp_path / "folds.json").read_text())
    assert report["fold_count"] == 2
    assert [len(fold["subjects"]) for fold in report["folds"]] == [3, 3]
    assert sorted(report["folds"][0]["subjects"] + report["folds"][1]["subjects"]) == [
        "F01", "F02", "F03", "M01", "M02", "M03"]
