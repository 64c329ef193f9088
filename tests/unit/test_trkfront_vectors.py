"""The compiled tracking front's shared vectors (native/trkfront/testdata/*.json) are what the
Python implementation gives today: change the token format, the bot check, the event body
or the journal line on the Python side and this fails until the vectors are written again
(`.venv/bin/python -m tests.lib.trkfront_vectors`), which then fails the Go tests
(`go test` in native/trkfront) until the Go side does the same."""

import json

import pytest

from tests.lib import trkfront_vectors


@pytest.mark.parametrize("name", sorted(trkfront_vectors.FILES))
def test_committed_vectors_match_the_python_code(name):
    path = trkfront_vectors.TESTDATA / name
    assert path.exists(), f"{path} is missing: python -m tests.lib.trkfront_vectors"
    committed = json.loads(path.read_text())
    assert committed == json.loads(trkfront_vectors.render(name)), (
        f"{path} no longer matches the Python implementation: write it again with "
        "`python -m tests.lib.trkfront_vectors` and make native/trkfront's go test pass")


def test_vectors_cover_both_answers():
    """Not an empty or one-sided file: refused and accepted tokens, flagged and human
    requests, events recorded and not."""
    tokens = json.loads((trkfront_vectors.TESTDATA / "tokens.json").read_text())["cases"]
    assert {c["link"] is None for c in tokens} == {True, False}
    requests = json.loads((trkfront_vectors.TESTDATA / "requests.json").read_text())["cases"]
    assert {c["status"] for c in requests} == {200, 302, 404, 405}
    recorded = [json.loads(c["event"]["body"]) for c in requests if c["event"]]
    assert {e["is_bot"] for e in recorded} == {True, False}
    assert any(c["event"] is None and c["status"] == 404 for c in requests)
