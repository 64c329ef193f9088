"""The panel import's column mapping: defaults by name, the checks on a chosen mapping, and
the importer reading a file through it."""

from __future__ import annotations

import io

import pytest

from altcraft.domain import importer
from altcraft.domain.databases import ProfileDatabase
from altcraft.domain.errors import Invalid
from altcraft.domain.import_jobs import check_mapping, default_mapping

DB = ProfileDatabase(7, "people", "email")


def test_columns_map_to_fields_by_name_or_a_usual_alias_and_the_rest_is_skipped():
    columns = ["E-mail", "Name", "Last Name", "city", "shoe size", "mail"]
    assert default_mapping(columns, DB) == {"E-mail": "email", "Name": "first_name", "Last Name": "last_name",
                                            "city": "city", "shoe size": "", "mail": ""}  # email taken once


@pytest.mark.parametrize(("mapping", "field", "reason"), [
    ({"a": "first_name", "b": ""}, "mapping", "no column for the database's key (email)"),
    ({"a": "email", "b": "email"}, "mapping", "more than one column for the field email"),
    ({"a": "email", "b": "shoe"}, "b", "'shoe' is not a field of database 7"),
])
def test_a_mapping_without_the_key_with_a_field_twice_or_an_unknown_field_is_refused(mapping, field, reason):
    with pytest.raises(Invalid) as caught:
        check_mapping(mapping, ["a", "b"], DB)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_rows_are_read_through_the_mapping_with_their_line_numbers():
    text = "E-mail;Name;junk\na@example.com;Anna;x\nb@example.com;Olga;y\n"
    mapping = {"E-mail": "email", "Name": "first_name", "junk": ""}
    rows = list(importer.read_rows(io.StringIO(text), "csv", set(DB.fields), mapping))
    assert rows == [(2, {"email": "a@example.com", "first_name": "Anna"}),
                    (3, {"email": "b@example.com", "first_name": "Olga"})]
    assert importer.columns(io.StringIO('{"mail": 1}\n{"mail": 2, "x": 3}\n'), "jsonl") == ["mail", "x"]
    with pytest.raises(importer.FileError, match="columns that are not fields of the database: junk"):
        list(importer.read_rows(io.StringIO(text), "csv", set(DB.fields), {**mapping, "junk": "junk"}))
