"""Field paths in one form everywhere (`alerts[3].recipients.email[1]`)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from datamantri_alerts.errors import InputError
from datamantri_alerts.fieldpath import field_path, from_loc
from datamantri_alerts.schema import validation_problems


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        (("alerts", 3, "recipients", "email", 1), "alerts[3].recipients.email[1]"),
        (
            ("alerts[3]", "condition_config", "pipeline_id"),
            "alerts[3].condition_config.pipeline_id",
        ),
        (("", None, "channels", 0), "channels[0]"),
        (("recipients", "odd key"), "recipients.'odd key'"),
        (("condition_config", "$schema"), "condition_config.$schema"),
        ((), ""),
    ],
)
def test_field_path(parts: tuple, path: str) -> None:
    assert field_path(*parts) == path


def test_from_loc_shows_empty_keys_and_indexes() -> None:
    assert from_loc(("recipients", "email", 2), "alerts[0]") == "alerts[0].recipients.email[2]"
    assert from_loc(("",)) == "''"


def test_every_pydantic_problem_is_listed_with_its_path() -> None:
    class Item(BaseModel):
        n: int
        tags: list[int]

    class Doc(BaseModel):
        items: list[Item]

    with pytest.raises(ValidationError) as caught:
        Doc.model_validate({"items": [{"n": "x", "tags": [1, "y", "z"]}, {}]})
    problems = validation_problems(caught.value, "doc")
    assert [p.field for p in problems] == [
        "doc.items[0].n",
        "doc.items[0].tags[1]",
        "doc.items[0].tags[2]",
        "doc.items[1].n",
        "doc.items[1].tags",
    ]
    assert problems[-1].message == "required field is missing"


def test_under_places_a_problem_below_a_prefix() -> None:
    error = InputError("bad", field="recipients.email[1]").under("alerts", 3)
    assert str(error) == "alerts[3].recipients.email[1]: bad"
    assert str(InputError("whole item").under("alerts", 0)) == "alerts[0]: whole item"


def test_a_path_with_quoted_keys_is_not_quoted_again() -> None:
    inner = field_path("recipients", "odd key")
    assert field_path("alerts", 0, inner) == "alerts[0].recipients.'odd key'"
    assert (
        str(InputError("x", field=inner).under("alerts", 1)) == "alerts[1].recipients.'odd key': x"
    )
