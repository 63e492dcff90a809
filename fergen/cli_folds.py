"""``fergen folds RECIPE``: print a recipe's subject-independent folds and write them as JSON.

The folds come from :func:`fergen.selection.plan_folds`, the function that the
renderer and the ``fergen_train`` protocols use, so the printed folds are the
ones a run trains and tests on. The JSON file lists every fold's subjects and
class counts, to publish next to results so others can reproduce the split.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import click

from . import __version__
from .errors import FergenError
from .folds import check_disjoint

# Subjects printed per fold before the list is cut (the JSON file contains them all).
_MAX_SUBJECTS_PRINTED = 40
# Unmatched files printed before the list is cut (the JSON file contains them all).
_MAX_UNMATCHED_PRINTED = 20


def fold_report(recipe_path: str, data_root: Optional[Path], count: Optional[int] = None) -> dict[str, Any]:
    """Load the recipe, split its faces into folds and return the report as plain data.

    ``count`` sets the number of folds when the recipe has no ``faces.subjects.fold``
    or to try another count; the permutation seed and stratification stay the recipe's.

    Raises:
        FergenError: if the recipe is invalid, the dataset can't be read, or the recipe has no fold settings.
        ValueError: if a subject were in a fold's train and test parts (a bug, checked on every call).
    """
    from .recipe import FoldSpec, load_recipe
    from .selection import plan_recipe_folds

    recipe = load_recipe(recipe_path)
    if count is not None:
        fold = recipe.faces.subjects.fold or FoldSpec(index=0, count=count)
        subjects = dataclasses.replace(recipe.faces.subjects, fold=dataclasses.replace(fold, index=0, count=count))
        recipe = recipe.replace(faces=dataclasses.replace(recipe.faces, subjects=subjects))
    plan = plan_recipe_folds(recipe, data_root)
    index = plan.candidates.index
    folds = []
    for fold in range(plan.count):
        test = plan.subjects(fold)
        train = [subject for subject, number in plan.assignment.items() if number != fold]
        check_disjoint(train, test)
        folds.append({"index": fold, "subjects": test, "faces": int(plan.test_mask(fold).sum()),
                      "class_counts": plan.class_counts(fold)})
    return {
        "recipe": str(recipe_path),
        "recipe_sha256": recipe.sha256,
        "fergen_version": __version__,
        "source": {"kind": recipe.faces.kind, "path": getattr(recipe.faces, "path", ""),
                   "faces": len(index), "subjects": len(plan.assignment), "split_by_image": plan.by_image},
        "fold_count": plan.count,
        "fold_seed": plan.seed,
        "stratify": plan.stratify,
        "class_names": list(plan.candidates.class_names),
        "folds": folds,
        "unmatched": list(index.unmatched),
        "stats": dict(index.stats),
    }


def format_report(report: dict[str, Any]) -> str:
    """Return the report as text: a class-count table, then each fold's subjects and the unmatched files."""
    source = report["source"]
    unit = "images" if source["split_by_image"] else "subjects"
    lines = [f"recipe {report['recipe']} (sha256 {report['recipe_sha256'][:12]})",
             f"source {source['kind']} {source['path']}: {source['faces']} faces of {source['subjects']} {unit}",
             f"{report['fold_count']} folds, permutation seed {report['fold_seed']}, "
             f"{'stratified by class' if report['stratify'] else 'not stratified'}"]
    if source["split_by_image"]:
        lines.append("note: this dataset has no subject ids, so folds split by image and one person may be "
                     "in two folds")
    lines.append("")
    lines += _count_table(report)
    lines.append("")
    for fold in report["folds"]:
        printed = fold["subjects"][:_MAX_SUBJECTS_PRINTED]
        more = len(fold["subjects"]) - len(printed)
        suffix = f" ... and {more} more (see --json)" if more else ""
        lines.append(f"fold {fold['index']} {unit}: {' '.join(printed)}{suffix}")
    lines.append("")
    lines.append(f"leakage check passed: each of the {source['subjects']} {unit} is in exactly one fold, so no "
                 "fold's train and test parts share one")
    for name, count in report["stats"].items():
        lines.append(f"{name.replace('_', ' ')}: {count}")
    unmatched = report["unmatched"]
    lines.append(f"unmatched files: {len(unmatched)}")
    lines += [f"  {entry}" for entry in unmatched[:_MAX_UNMATCHED_PRINTED]]
    if len(unmatched) > _MAX_UNMATCHED_PRINTED:
        lines.append(f"  ... and {len(unmatched) - _MAX_UNMATCHED_PRINTED} more (see --json)")
    return "\n".join(lines)


def _count_table(report: dict[str, Any]) -> list[str]:
    names = report["class_names"]
    header = ["fold", "subjects", "faces", *names]
    rows = [[str(fold["index"]), str(len(fold["subjects"])), str(fold["faces"]),
             *(str(fold["class_counts"][name]) for name in names)] for fold in report["folds"]]
    totals = ["total", str(report["source"]["subjects"]), str(report["source"]["faces"]),
              *(str(sum(fold["class_counts"][name] for fold in report["folds"])) for name in names)]
    widths = [max(len(row[column]) for row in [header, *rows, totals]) for column in range(len(header))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header, *rows, totals]]


@click.command("folds")
@click.argument("recipe")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder that relative paths in the recipe are resolved against "
                   "[default: $FERGEN_DATA_ROOT, else the current folder].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every fold's subjects and class counts to this JSON file.")
@click.option("--count", type=click.IntRange(2), default=None,
              help="Number of folds [default: faces.subjects.fold.count of the recipe].")
@click.pass_context
def folds(context: click.Context, recipe: str, data_root: Optional[Path], json_path: Optional[Path],
          count: Optional[int]) -> None:
    """Print the subject-independent folds of RECIPE: subjects and class counts per fold.

    The fold count comes from --count or from 'faces.subjects.fold' (whose index and part are ignored here).
    """
    try:
        report = fold_report(recipe, data_root, count)
    except FergenError as error:
        click.echo(f"error: {error}", err=True)
        context.exit(2)
    click.echo(format_report(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}")
