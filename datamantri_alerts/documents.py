"""Reading YAML and JSON documents (alert files, sync files, `--config` values) safely.

A document is refused, with one `InputError` line, when it cannot be parsed, nests so deeply
that a parser would exhaust the stack, says the same key twice in one mapping (YAML or JSON:
"last one wins" silently drops what a person wrote; the line names the key path and its line),
or holds numbers too long to convert. What a decoded document may contain (text, nesting) is
checked by `inputs.check_document` when it is validated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datamantri_alerts.errors import InputError
from datamantri_alerts.fieldpath import field_path


def _yaml_loader() -> Any:
    """A safe loader without YAML 1.1 base-60 integers: `10:30` stays the string "10:30"."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(
            r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
        ),
        list("-+0123456789"),
    )
    return Loader


def _first_duplicate_key(root: Any) -> tuple[str, int] | None:
    """(key path, 1-based line) of the first key a YAML mapping node repeats, else None.

    Walks the composed node graph iteratively (a deep tree cannot exhaust the stack) and visits
    each node once (aliases cannot multiply the work).
    """
    import yaml

    stack: list[tuple[Any, list[str | int]]] = [(root, [])]
    visited: set[int] = set()  # an aliased node is checked once, not once per alias
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            children = []
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    identity = (key_node.tag, key_node.value)
                    if identity in seen:
                        return field_path(*path, key_node.value), key_node.start_mark.line + 1
                    seen.add(identity)
                    children.append((value_node, [*path, key_node.value]))
                else:
                    children.append((value_node, [*path, "?"]))
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(
                (item, [*path, index]) for index, item in reversed(list(enumerate(node.value)))
            )
    return None


def _duplicate_error(name: str, key: str, found: tuple[str, int] | None) -> InputError:
    if found is None:
        return InputError(f"{name}: duplicate key {key!r}")
    path, line = found
    return InputError(f"duplicate key at line {line}: it is given twice in one mapping", path)


def parse_yaml(text: str, name: str) -> Any:
    """Decode YAML text (name labels errors). Raises InputError as the module says."""
    import yaml

    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        found = _first_duplicate_key(node)
        if found is not None:
            raise _duplicate_error(name, "", found)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise InputError(f"{name}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise InputError(f"{name}: YAML nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise InputError(f"{name}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def parse_json(text: str, name: str) -> Any:
    """Decode JSON text (name labels errors). Raises InputError as the module says."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except _DuplicateKey as exc:
        # json reports no positions to the hook; JSON is YAML, so YAML's nodes locate the key.
        found = None
        try:
            import yaml

            node = _yaml_loader()(text).get_single_node()
            found = _first_duplicate_key(node) if node is not None else None
        except (yaml.YAMLError, RecursionError, ValueError):
            pass
        raise _duplicate_error(name, exc.key, found) from None
    except RecursionError:
        raise InputError(f"{name}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise InputError(f"{name}: malformed JSON: {exc}") from None


def load_document(path: Path | str, *, text: str | None = None) -> Any:
    """Parse a YAML or JSON file (by its suffix; JSON's own errors read better than YAML's).

    text: the content, when it was read already (e.g. from $EDITOR). Raises InputError.
    """
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        return parse_json(text, path.name)
    return parse_yaml(text, path.name)
