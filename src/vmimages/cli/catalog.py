"""`vmimages instances` and `images`: what CreateImage images, and the public catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vmimages.catalog import ImportReport, Named
from vmimages.catalogfile import (
    CatalogFileError,
    is_yaml,
    parse_catalog_partly,
    read_document,
    to_document,
    write_document,
)
from vmimages.cli import (
    BAR_FROM_BYTES,
    database_option,
    json_option,
    main,
    not_imported,
    progress_bar,
    quiet_option,
    settings_from,
    with_store,
)

# Instances ----------------------------------------------------------------------------------


@main.group()
def instances() -> None:
    """The instances CreateImage can image (ours is a directory; the VMs live elsewhere)."""


@instances.command("add")
@click.argument("instance_id")
@click.option("--account", required=True, help="The account that owns the instance.")
@click.option("--location", required=True, help="Its region id or zone id.")
@click.option("--disk-size", type=click.IntRange(1, 65536), help="System disk in GB.")
@click.option(
    "--image",
    help="The public image it runs (its OS passes to images of it).  [default: the location's"
    " newest available Linux image]",
)
@database_option
@json_option
def instances_add(
    instance_id: str,
    account: str,
    location: str,
    disk_size: int | None,
    image: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Record instance INSTANCE_ID of an account."""
    if not 1 <= len(instance_id) <= 64:
        raise click.BadParameter("must be 1 to 64 characters", param_hint="INSTANCE_ID")
    instance = with_store(
        settings_from(**options),
        lambda store: store.add_instance(instance_id, account, location, disk_size, image),
    )
    if as_json:
        click.echo(json.dumps(instance.document()))
    else:
        click.echo(
            f"added instance {instance.instance_id} of {instance.account} in {instance.zone_id}"
            f" ({instance.category} {instance.version}, {instance.disk_size_gb} GB)"
        )


@instances.command("list")
@click.option("--account", help="Only this account's.")
@database_option
@json_option
def instances_list(account: str | None, as_json: bool, **options: Any) -> None:
    """List the instances."""
    found = with_store(
        settings_from(**options), lambda store: store.list_instances(account=account)
    )
    if as_json:
        click.echo(json.dumps([i.document() for i in found]))
    else:
        click.echo("INSTANCE\tACCOUNT\tZONE\tSYSTEM\tDISK")
        for i in found:
            click.echo(
                f"{i.instance_id}\t{i.account}\t{i.zone_id}\t{i.category} {i.version}"
                f"\t{i.disk_size_gb} GB"
            )


@instances.command("remove")
@click.argument("instance_id")
@database_option
def instances_remove(instance_id: str, **options: Any) -> None:
    """Forget an instance; images still being built from it fail (UNAVAILABLE)."""
    with_store(settings_from(**options), lambda store: store.remove_instance(instance_id))
    click.echo(f"removed instance {instance_id}")


# The public catalog ---------------------------------------------------------------------------


@main.group()
def images() -> None:
    """Publish and maintain the public catalog from JSON or YAML files."""


@images.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="List what would be added, changed and removed; change nothing."
)
@click.option(
    "--prune",
    is_flag=True,
    help="Unpublish the public images FILE does not list (they leave the catalog; instances"
    " and custom images made from them are untouched).",
)
@database_option
@quiet_option
@json_option
def images_import(
    file: Path, dry_run: bool, prune: bool, quiet: bool, as_json: bool, **options: Any
) -> None:
    """Publish or update the locations and public images of FILE (.json, .yaml or .yml).

    The whole file is checked first, against itself and the database, and every problem is
    reported at once; any problem and nothing changes. Importing the same file twice changes
    nothing the second time. Public images not in FILE are kept, unless --prune. --dry-run
    lists each location and image that would be added, changed or removed (--json: for
    scripts). A large file shows its progress on stderr when that is a terminal.
    """
    size = file.stat().st_size
    try:
        with progress_bar(f"reading {file.name}", size, quiet, BAR_FROM_BYTES) as read:
            catalog, checked = parse_catalog_partly(read_document(file, read))
    except CatalogFileError as exc:
        raise not_imported(exc) from exc
    with progress_bar("importing images", len(catalog.images), quiet or as_json) as imported:
        report = with_store(
            settings_from(**options),
            lambda store: store.import_catalog(
                catalog, dry_run=dry_run, prune=prune, progress=imported, checked=checked
            ),
        )
    document = report_document(report, dry_run, prune)
    if as_json:
        click.echo(json.dumps(document))
        return
    if quiet:
        return
    click.echo(
        f"{'would import' if dry_run else 'imported'} {file}: locations"
        f" {len(report.locations_added)} added, {len(report.locations_updated)} updated,"
        f" {report.locations_unchanged} unchanged; images {len(report.images_added)} added,"
        f" {len(report.images_updated)} updated"
        + (f", {len(report.images_removed)} removed" if prune else "")
        + f", {report.images_unchanged} unchanged"
        + ("; nothing was changed" if dry_run else "")
    )
    if dry_run:
        for kind, key, name in (("locations", "regionId", "name"),
                                ("images", "imageId", "imageName")):  # fmt: skip
            found = document[kind]
            for what, mark in (("added", "+"), ("updated", "~"), ("removed", "-")):
                for entry in found.get(what, []):
                    click.echo(f"{mark} {kind[:-1]} {entry[key]}  {entry[name]}  ({what})")


def report_document(report: ImportReport, dry_run: bool, prune: bool) -> dict[str, Any]:
    """An import's report for --json: ids and names of what changes, counts of the rest."""

    def listed(named: list[Named], key: str, name: str) -> list[dict[str, str]]:
        return [{key: ident, name: label} for ident, label in named]

    images: dict[str, Any] = {
        "added": listed(report.images_added, "imageId", "imageName"),
        "updated": listed(report.images_updated, "imageId", "imageName"),
        "unchanged": report.images_unchanged,
    }
    if prune:
        images["removed"] = listed(report.images_removed, "imageId", "imageName")
    return {
        "dryRun": dry_run,
        "locations": {
            "added": listed(report.locations_added, "regionId", "name"),
            "updated": listed(report.locations_updated, "regionId", "name"),
            "unchanged": report.locations_unchanged,
        },
        "images": images,
    }


@images.command("export")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File to write."
)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "yaml"]),
    help="[default: from the output's name, else json]",
)  # fmt: skip
@database_option
@quiet_option
def images_export(output: Path | None, fmt: str | None, quiet: bool, **options: Any) -> None:
    """Write every location and public image in the format `images import` reads.

    A large catalog shows its progress on stderr when that is a terminal.
    """
    catalog = with_store(settings_from(**options), lambda store: store.export_catalog())
    as_yaml = fmt == "yaml" or (fmt is None and output is not None and is_yaml(output))
    label = f"writing {output.name if output else 'the catalog'}"
    with progress_bar(label, len(catalog.images), quiet) as written:
        if output is None:
            write_document(to_document(catalog), sys.stdout, as_yaml, written)
            return
        with output.open("w", encoding="utf-8") as out:
            write_document(to_document(catalog), out, as_yaml, written)
    if not quiet:
        click.echo(
            f"exported {len(catalog.locations)} locations and {len(catalog.images)} images"
            f" to {output}",
            err=True,
        )
