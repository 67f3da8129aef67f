"""`alerts types`: every alert type with its config keys, from the models that validate them."""

from __future__ import annotations

import json

import typer

from datamantri_alerts.cli.context import print_json
from datamantri_alerts.cli.options import JSON_OPTION


def types(as_json: bool = JSON_OPTION) -> None:
    """List the alert types (plugins included): description, default severity, and each
    `condition_config` key with its type, whether it is required, its default and bounds."""
    from datamantri_alerts.checks.catalog import type_catalog
    from datamantri_alerts.cli.table import Column, render_table

    catalog = type_catalog()
    if as_json:
        print_json(catalog)
        return
    columns = [
        Column("Key"),
        Column("Type"),
        Column("Required / default"),
        Column("Bounds", drop=2, flexible=True),
    ]
    if any(key["description"] for entry in catalog for key in entry["config"]):
        columns.append(Column("Description", detail=True, drop=3))
    blocks = []
    for entry in catalog:
        rows = [
            (
                key["name"],
                key["type"],
                "required" if key["required"] else f"default {json.dumps(key['default'])}",
                ", ".join(key["bounds"]) or "-",
                key["description"],
            )[: len(columns)]
            for key in entry["config"]
        ]
        title = (
            f"{entry['name']}: {entry['description']} "
            f"(default severity {entry['default_severity']})"
        )
        blocks.append(render_table(columns, rows, title=title))
    typer.echo("\n".join(blocks), nl=False)
