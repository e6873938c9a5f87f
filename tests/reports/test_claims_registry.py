"""The claims registry of reports.claims: docs/claims.md shows what the registry renders, and
every part of the study (requests, evaluation, the table) reads the claims from it."""

from __future__ import annotations

import dataclasses

import pytest

from reports import claims as C


def test_docs_block_is_the_rendered_registry():
    text = C.DOCS.read_text()
    assert text.count(C.DOCS_BEGIN) == 1 and text.count(C.DOCS_END) == 1
    block = text.split(C.DOCS_BEGIN)[1].split(C.DOCS_END)[0].strip("\n")
    assert block == C.docs_block(), (
        f"the claims block of {C.DOCS} differs from the registry in reports/claims.py; "
        "regenerate it with `python -m reports.claims --write-docs`"
    )


def test_docs_text_replaces_only_the_block():
    text = (
        f"# head\n\nkept above\n{C.DOCS_BEGIN}\nstale\n{C.DOCS_END}\n\n## Results\n\nkept below\n"
    )
    out = C.docs_text(text)
    assert out.startswith("# head\n\nkept above\n") and out.endswith("## Results\n\nkept below\n")
    assert "stale" not in out and C.docs_block() in out
    assert C.docs_text(out) == out  # idempotent
    with pytest.raises(C.ClaimsError, match="lacks the markers"):
        C.docs_text("# no markers\n")


def test_every_claim_is_one_frozen_registry_entry():
    assert list(C.CLAIMS) == [c.id for c in C.REGISTRY] == ["C1", "C2", "C3", "C4", "C5", "C6"]
    for c in C.REGISTRY:
        assert c.statement and c.paper and c.rule and callable(c.evaluate)
        assert c.variants <= set(C.VARIANTS) and c.frameworks <= set(C.FRAMEWORKS)
        assert "|" not in c.rule + c.statement + c.paper  # Markdown table cells
        with pytest.raises(dataclasses.FrozenInstanceError):
            c.rule = "changed"  # type: ignore[misc]
        assert f"| {c.id} | {c.statement} |" in C.docs_block()


def test_requests_read_the_needs_from_the_registry():
    for c in C.REGISTRY:
        C.check_request([c.id], list(c.variants), list(c.frameworks), list(c.variants) or None)
        for v in c.variants:
            with pytest.raises(C.ClaimsError, match=f"{c.id} needs variants \\['{v}'\\]"):
                C.check_request([c.id], sorted(c.variants - {v}), list(c.frameworks))
