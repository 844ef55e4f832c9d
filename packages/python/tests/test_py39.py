"""The package promises Python >= 3.9: its syntax must parse as 3.9 (no match, no 3.10+ grammar)."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "cairn"


def test_every_module_parses_as_python_3_9() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    for f in files:
        ast.parse(f.read_text(), filename=str(f), feature_version=(3, 9))


def test_annotations_are_not_evaluated_at_import() -> None:
    # `X | None` in annotations is 3.10 syntax at runtime; postponed evaluation keeps 3.9 happy.
    for f in sorted(PACKAGE.rglob("*.py")):
        text = f.read_text()
        if " | " in text and ("def " in text or ": " in text):
            assert "from __future__ import annotations" in text, f"{f} uses X | Y without postponed annotations"
