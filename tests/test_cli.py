"""The fergen command line, run through click's test runner on real files."""

from __future__ import annotations

import json

import cv2
import yaml
from click.testing import CliRunner

from fergen.cli import cli
from testdata import small_recipe


def run(*arguments: str):
    return CliRunner().invoke(cli, list(arguments), catch_exceptions=False)


def write_recipe(tmp_path, face_folder, background_folder, **sections):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(small_recipe(face_folder, background_folder, **sections)))
    return path


def test_render_verify_inspect(tmp_path, face_folder, background_folder):
    recipe = write_recipe(tmp_path, face_folder, background_folder)
    out = tmp_path / "out"
    result = run("render", str(recipe), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert "wrote 20 samples in 3 shards" in result.output
    assert "skipped faces: 0" in result.output
    result = run("verify", str(out))
    assert result.exit_code == 0
    assert "OK: 3 shards, 20 samples" in result.output
    result = run("inspect", str(out), "-n", "1")
    assert result.exit_code == 0
    assert "samples:     20 in 3 shards" in result.output
    assert '"index": 0' in result.output
    rerun = run("render", str(recipe), "-o", str(out), "-q")
    assert "(0 rendered, 3 reused)" in rerun.output


def test_verify_reports_damage_with_exit_code(tmp_path, face_folder, background_folder):
    recipe = write_recipe(tmp_path, face_folder, background_folder)
    out = tmp_path / "out"
    run("render", str(recipe), "-o", str(out), "-q")
    (out / "shard-000001.tar").unlink()
    result = run("verify", str(out))
    assert result.exit_code == 1
    assert "problem: shard-000001.tar: missing" in result.output


def test_preview_writes_labelled_png(tmp_path, face_folder, background_folder):
    recipe = write_recipe(tmp_path, face_folder, background_folder)
    result = run("preview", str(recipe), "-o", str(tmp_path / "grid.png"), "-n", "6", "--columns", "3")
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(tmp_path / "grid.png"))
    # 3 tiles of (3 x 64 + 2 x 4) px plus gaps; 2 rows of (16 + 64) px plus gaps.
    assert image.shape == (2 * (16 + 64 + 4) + 4, 3 * (3 * 64 + 8 + 4) + 4, 3)


def test_recipe_commands(tmp_path, face_folder, background_folder):
    recipe = write_recipe(tmp_path, face_folder, background_folder)
    validate = run("recipe", "validate", str(recipe), "--check-data")
    assert validate.exit_code == 0
    assert "faces: 12 selected in 3 classes; backgrounds: 5" in validate.output
    digest = run("recipe", "hash", str(recipe)).output.strip()
    assert len(digest) == 64
    shown = run("recipe", "show", str(recipe)).output
    canonical = tmp_path / "canonical.yaml"
    canonical.write_text(shown)
    assert run("recipe", "hash", str(canonical)).output.strip() == digest
    assert "demo" in run("recipe", "list").output


def test_bad_recipe_gives_one_line_error(tmp_path, face_folder, background_folder):
    recipe = write_recipe(tmp_path, face_folder, background_folder, render={"rotation_rang": [0, 1]})
    result = CliRunner().invoke(cli, ["render", str(recipe), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "recipe key 'render.rotation_rang': unknown key" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_missing_data_gives_clear_error(tmp_path, background_folder):
    recipe = write_recipe(tmp_path, tmp_path / "missing-faces", background_folder)
    result = CliRunner().invoke(cli, ["render", str(recipe), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "missing-faces not found" in result.output


def test_samples_override_changes_count(tmp_path, face_folder, background_folder):
    recipe = write_recipe(tmp_path, face_folder, background_folder)
    out = tmp_path / "out"
    result = run("render", str(recipe), "-o", str(out), "-q", "--samples", "5", "-w", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"] == 5
    assert manifest["recipe"]["output"]["samples"] == 5


def test_recipe_keys_lists_shared_and_nested_keys():
    output = run("recipe", "keys").output
    keys = [line for line in output.splitlines() if not line.startswith(" ")]
    for key in ("faces.mask.strategy", "faces.subjects.fold.count", "faces.limit", "backgrounds.max_unreadable",
                "render.rotation_range", "output.samples"):
        assert key in keys
    assert "faces.path" not in keys
    folder = [line for line in run("recipe", "keys", "--faces-kind", "folder").output.splitlines()
              if not line.startswith(" ")]
    assert "faces.path" in folder
    assert "faces.mask_suffix" in folder
