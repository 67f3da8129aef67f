"""What every alert type accepts, read from the config models that validate it.

Built from the registry (`check_types` / `get_check`), so third-party types installed through
the entry-point group appear like built-in ones, and the catalogue cannot drift from what
`condition_config` validation accepts: it is each model's own JSON schema.
"""

from __future__ import annotations

from typing import Any

from datamantri_alerts.checks import check_types, get_check

#: JSON schema bounds, as shown next to a key.
_BOUNDS = (
    ("minimum", ">="),
    ("exclusiveMinimum", ">"),
    ("maximum", "<="),
    ("exclusiveMaximum", "<"),
    ("minLength", "length >="),
    ("maxLength", "length <="),
)


def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if "anyOf" in schema:
        names = [_type_of(option) for option in schema["anyOf"]]
        return " | ".join(dict.fromkeys(n for n in names if n != "null")) + (
            " (or null)" if "null" in names else ""
        )
    if schema.get("type") == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def _bounds(schema: dict[str, Any]) -> list[str]:
    found = [f"{sign} {schema[key]}" for key, sign in _BOUNDS if key in schema]
    for option in schema.get("anyOf", []):
        found.extend(_bounds(option))
    return found


def config_keys(model: type[Any]) -> list[dict[str, Any]]:
    """One entry per key of a config model: name, type, required, default, bounds,
    description (the field's own description, when it gives one)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    keys = []
    for name, prop in schema.get("properties", {}).items():
        keys.append(
            {
                "name": name,
                "type": _type_of(prop),
                "required": name in required,
                "default": prop.get("default"),
                "bounds": _bounds(prop),
                "description": prop.get("description", ""),
            }
        )
    keys.sort(key=lambda key: not key["required"])
    return keys


def type_catalog() -> list[dict[str, Any]]:
    """Every alert type: name, description (one line), default severity and config keys."""
    catalog = []
    for name in check_types():
        check = get_check(name)
        catalog.append(
            {
                "name": name,
                "description": " ".join(str(check.description).split()),
                "default_severity": check.default_severity,
                "config": config_keys(check.config_model),
            }
        )
    return catalog
