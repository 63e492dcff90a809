"""The ``fergen`` command line: render, verify, inspect, preview and recipe tools."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import click

from . import __version__
from .cli_folds import folds
from .errors import FergenError

log = logging.getLogger("fergen")


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    # Dask logs every worker start and stop at INFO; show those only with -vv.
    logging.getLogger("distributed").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)


class FergenGroup(click.Group):
    """Click group that turns fergen's own errors into one clean line and exit code 2."""

    def invoke(self, context: click.Context):
        try:
            return super().invoke(context)
        except FergenError as error:
            click.echo(f"error: {error}", err=True)
            context.exit(2)


data_root_option = click.option(
    "--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder that relative paths in the recipe are resolved against "
         "[default: $FERGEN_DATA_ROOT, else the current folder].")


@click.group(cls=FergenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fergen")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Render synthetic facial-expression datasets from YAML recipes."""
    _setup_logging(verbose)


def _load(recipe: str, samples: Optional[int] = None):
    from .recipe import load_recipe

    loaded = load_recipe(recipe)
    if samples is not None:
        loaded = loaded.replace(output=dataclasses.replace(loaded.output, samples=samples))
    return loaded


def _prepare_renderer(loaded, data_root: Optional[Path], workers: int, cache_dir: Optional[Path], quiet: bool):
    """Build the renderer, with a progress bar while faces are masked and prepared."""
    from tqdm import tqdm

    from .pipeline import Renderer

    bars = []

    def start(total: int) -> None:
        bars.append(tqdm(total=total, unit="face", disable=quiet, file=sys.stderr, dynamic_ncols=True,
                         desc="preparing faces"))

    try:
        return Renderer(loaded, data_root, cache_dir=cache_dir, workers=workers, on_face_start=start,
                        face_progress=lambda count: bars[-1].update(count))
    finally:
        for bar in bars:
            bar.close()


@cli.command()
@click.argument("recipe")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for the shards and manifest.json.")
@data_root_option
@click.option("-w", "--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes; the shards are identical for any count.")
@click.option("--backend", type=click.Choice(["joblib", "dask"]), default="joblib", show_default=True,
              help="Run shards in local joblib processes or on a Dask cluster.")
@click.option("--scheduler", default=None, help="Dask scheduler address (tcp://HOST:8786) [default: a local cluster].")
@click.option("--samples", type=click.IntRange(1), default=None,
              help="Override output.samples (changes the recipe hash).")
@click.option("--overwrite", is_flag=True, help="Replace shards of a different recipe in the output folder.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Face cache folder [default: $FERGEN_CACHE_DIR, else $XDG_CACHE_HOME/fergen, "
                   "else ~/.cache/fergen].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def render(recipe: str, out: Path, data_root: Optional[Path], workers: int, backend: str,
           scheduler: Optional[str], samples: Optional[int], overwrite: bool, cache_dir: Optional[Path],
           quiet: bool) -> None:
    """Render RECIPE (a YAML file, or a bundled name such as 'demo') into WebDataset shards.

    An interrupted run resumes: finished shards whose checksum matches are kept.
    """
    from tqdm import tqdm

    from .engine import render_to_folder

    loaded = _load(recipe, samples)
    click.echo(f"recipe {loaded.name} ({loaded.sha256[:12]}): {loaded.output.samples} samples in "
               f"{loaded.shard_count} shards -> {out}", err=True)
    renderer = _prepare_renderer(loaded, data_root, workers, cache_dir, quiet)
    with tqdm(total=loaded.output.samples, unit="sample", disable=quiet, file=sys.stderr,
              dynamic_ncols=True, smoothing=0.1, desc="rendering") as bar:
        summary = render_to_folder(loaded, out, data_root=data_root, workers=workers, backend=backend,
                                   scheduler=scheduler, overwrite=overwrite, progress=bar.update,
                                   cache_dir=cache_dir, renderer=renderer)
    click.echo(f"wrote {summary.samples} samples in {summary.shards} shards to {summary.out} "
               f"({summary.rendered_shards} rendered, {summary.reused_shards} reused) in {summary.seconds:.1f} s"
               f" ({summary.samples_per_second:.0f} samples/s)")
    click.echo("classes: " + ", ".join(f"{name} {count}" for name, count in summary.histogram.items()))
    skipped = sum(summary.skipped_faces.values())
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(summary.skipped_faces.items()))
    click.echo(f"skipped faces: {skipped}" + (f" ({reasons})" if reasons else ""))
    if summary.unmatched_files:
        click.echo(f"files not matching the dataset's naming scheme: {summary.unmatched_files} "
                   f"(listed in {summary.out / 'manifest.json'})")
    if summary.unreadable_backgrounds:
        click.echo(f"unreadable backgrounds skipped: {len(summary.unreadable_backgrounds)}")


@cli.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--deep", is_flag=True, help="Also decode every image member.")
def verify(out: Path, deep: bool) -> None:
    """Check OUT's shards against manifest.json (presence, size, sha256, members)."""
    from .engine import verify_folder

    report = verify_folder(out, deep=deep)
    if report.ok:
        click.echo(f"OK: {report.shards} shards, {report.samples} samples in {out}")
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(f"FAILED: {len(report.problems)} problem(s) in {out}; rerun 'fergen render' on the same recipe "
               "and folder to re-render damaged shards.", err=True)
    sys.exit(1)


@cli.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "--samples", "count", type=click.IntRange(0), default=2, show_default=True,
              help="How many samples' metadata to print.")
def inspect(out: Path, count: int) -> None:
    """Print counts, the class histogram and sample metadata of a rendered folder."""
    import webdataset as wds

    from .shards import read_manifest

    manifest = read_manifest(out)
    click.echo(f"folder:      {out}")
    click.echo(f"recipe:      {manifest['recipe'].get('name')} (sha256 {manifest['recipe_sha256']})")
    click.echo(f"samples:     {manifest['samples']} in {manifest['shard_count']} shards")
    click.echo(f"faces:       {manifest['faces']['count']} from {manifest['faces']['subjects']} subjects; "
               f"skipped {sum(manifest['faces']['skipped'].values())}")
    click.echo("classes:")
    for name in manifest["class_names"]:
        click.echo(f"  {name:<16} {manifest['class_histogram'].get(name, 0)}")
    if count == 0:
        return
    urls = [str(out / entry["name"]) for entry in manifest["shards"]]
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    for position, sample in enumerate(dataset):
        if position >= count:
            break
        click.echo(f"sample {sample['__key__']}:")
        click.echo(json.dumps(json.loads(sample["json"]), indent=2, sort_keys=True))


@cli.command()
@click.argument("recipe")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")
@data_root_option
@click.option("-n", "--count", type=click.IntRange(1, 400), default=16, show_default=True,
              help="Number of samples shown.")
@click.option("--columns", type=click.IntRange(1, 20), default=4, show_default=True, help="Tiles per row.")
@click.option("--start", type=click.IntRange(0), default=0, show_default=True, help="First sample index.")
def preview(recipe: str, out: Path, data_root: Optional[Path], count: int, columns: int, start: int) -> None:
    """Render a labelled contact sheet (composite, target, mask) of RECIPE's first samples."""
    from .pipeline import Renderer
    from .preview import contact_sheet, write_png

    renderer = Renderer(_load(recipe), data_root)
    samples = [renderer.sample(index) for index in range(start, start + count)]
    write_png(out, contact_sheet(samples, renderer.class_names, columns))
    click.echo(f"wrote {out} ({count} samples: composite | target | mask)")


@cli.group()
def recipe() -> None:
    """Validate, show or hash a recipe."""


@recipe.command("validate")
@click.argument("recipe_path", metavar="RECIPE")
@data_root_option
@click.option("--check-data", is_flag=True, help="Also open the face and background sources.")
def recipe_validate(recipe_path: str, data_root: Optional[Path], check_data: bool) -> None:
    """Check RECIPE's keys, types and ranges (and, with --check-data, its data)."""
    loaded = _load(recipe_path)
    if check_data:
        from .recipe import resolve_data_root
        from .selection import select_faces

        root = resolve_data_root(data_root)
        source = loaded.faces.open(root)
        selection = select_faces(loaded.faces, source, loaded.seed)
        backgrounds = loaded.backgrounds.open(root)
        click.echo(f"faces: {len(selection.records)} selected in {len(selection.class_names)} classes; "
                   f"backgrounds: {len(backgrounds)}")
    click.echo(f"OK: {recipe_path} is a valid version {loaded.version} recipe (sha256 {loaded.sha256})")


@recipe.command("show")
@click.argument("recipe_path", metavar="RECIPE")
def recipe_show(recipe_path: str) -> None:
    """Print RECIPE in canonical form: every key, defaults filled in, keys sorted."""
    click.echo(_load(recipe_path).canonical_yaml(), nl=False)


@recipe.command("hash")
@click.argument("recipe_path", metavar="RECIPE")
def recipe_hash(recipe_path: str) -> None:
    """Print the sha256 of RECIPE's canonical form."""
    click.echo(_load(recipe_path).sha256)


@recipe.command("keys")
@click.option("--faces-kind", default=None, help="Also list the keys of this face source kind.")
@click.option("--backgrounds-kind", default=None, help="Also list the keys of this background source kind.")
def recipe_keys(faces_kind: Optional[str], backgrounds_kind: Optional[str]) -> None:
    """List every recipe key with its type, allowed range, default and meaning.

    Without --faces-kind or --backgrounds-kind, the faces and backgrounds keys
    shown are those every source kind shares.
    """
    from .backgrounds import BACKGROUND_KINDS
    from .faces import FACE_KINDS
    from .recipe import BackgroundSourceConfig, FaceSourceConfig, Recipe
    from .schema import describe

    for name, registry, section in ((faces_kind, FACE_KINDS, "faces"),
                                    (backgrounds_kind, BACKGROUND_KINDS, "backgrounds")):
        if name is not None and name not in registry:
            raise click.BadParameter(f"{name!r}; choose one of {', '.join(sorted(registry))}",
                                     param_hint=f"--{section}-kind")
    rows = [row for row in describe(Recipe) if not row[0].startswith(("faces.", "backgrounds."))]
    # Without a kind, list the keys every face or background source shares.
    rows += describe(FACE_KINDS[faces_kind] if faces_kind else FaceSourceConfig, "faces")
    rows += describe(BACKGROUND_KINDS[backgrounds_kind] if backgrounds_kind else BackgroundSourceConfig,
                     "backgrounds")
    for key, kind, default, meaning in rows:
        click.echo(f"{key}\n    {kind}; default {default or '-'}\n    {meaning}")


@recipe.command("list")
def recipe_list() -> None:
    """List the recipes bundled with fergen."""
    from .recipe import bundled_recipes

    for name, path in bundled_recipes().items():
        click.echo(f"{name}\t{path}")


cli.add_command(folds)


def main() -> None:
    cli(prog_name="fergen")


if __name__ == "__main__":
    main()
