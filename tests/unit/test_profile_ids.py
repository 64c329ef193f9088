"""Profile ids made in bulk for an import (domain/profiles.new_ids) have uuid4().hex's form."""

import uuid

from altcraft.domain.profiles import new_ids


def test_bulk_ids_are_random_version_4_uuids_in_hex():
    ids = new_ids(20_000)
    assert len(ids) == len(set(ids)) == 20_000
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.hex, parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)
    # every other hex digit takes every value: the bits are random, not a counter or a constant
    for position in (0, 11, 13, 20, 31):
        assert len({value[position] for value in ids}) == 16
    assert {value[16] for value in ids} == set("89ab")
    assert new_ids(0) == []
