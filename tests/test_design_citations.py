"""Every citation of the design points into the repository: ``docs/design.md`` has the
section or the numbered rule that the code, the tests and the docs name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
CITING = ("strata", "tests", "benchmarks", "docs", "demo", "README.md")
SUFFIXES = {".py", ".md", ".j2", ".vcl", ".toml", ".cfg", ".conf"}
# A quoted title within this many characters of a mention of the design is a citation.
NEAR = 160


def _design_sections() -> set[str]:
    return {
        _normal(line.lstrip("#"))
        for line in DESIGN.read_text().splitlines()
        if line.startswith("#")
    }


def _design_rules() -> set[int]:
    protocol = DESIGN.read_text().split("## The consistency protocol", 1)[1]
    protocol = protocol.split("\n## ", 1)[0]
    return {int(number) for number in re.findall(r"^(\d+)\. ", protocol, re.MULTILINE)}


def _normal(text: str) -> str:
    return " ".join(text.replace("#", " ").split()).strip(" .").lower()


def _citing_files():
    for name in CITING:
        path = ROOT / name
        paths = [path] if path.is_file() else path.rglob("*")
        for candidate in paths:
            if (
                candidate.suffix in SUFFIXES
                and candidate != DESIGN
                and candidate != Path(__file__).resolve()
                and "examples" not in candidate.parts
            ):
                yield candidate


def _citations():
    """(file, kind, value) for each section title or rule number cited beside the design."""
    for path in _citing_files():
        text = _normal_whitespace(path.read_text(errors="replace"))
        for mention in re.finditer(r"design\.md|DESIGN\b", text):
            window = text[max(0, mention.start() - NEAR) : mention.end() + NEAR]
            for title in re.findall(r'"([A-Z][^"]{6,80})"', window):
                yield path, "section", title
            for number in re.findall(r"\brule (\d+)\b", window, re.IGNORECASE):
                yield path, "rule", int(number)


def _normal_whitespace(text: str) -> str:
    # Titles wrap across comment and docstring lines: join them back.
    return re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)


def test_every_cited_section_and_rule_is_in_the_design():
    sections = _design_sections()
    rules = _design_rules()
    missing = []
    for path, kind, value in _citations():
        # A quote beside the mention may be prose, not a title: only titles that read
        # like one of ours (capitalised, no sentence punctuation) must resolve.
        looks_like_title = (
            kind == "section"
            and not re.search(r"[,;:()=]", str(value))
            and len(str(value).split()) <= 8
        )
        if looks_like_title and _normal(str(value)) not in sections:
            missing.append(f"{path.relative_to(ROOT)}: section {value!r}")
        if kind == "rule" and value not in rules:
            missing.append(f"{path.relative_to(ROOT)}: rule {value}")
    assert not missing, "citations of docs/design.md that it does not hold:\n" + "\n".join(missing)


def test_the_design_is_cited_by_its_path_in_the_repository():
    outside = [
        str(path.relative_to(ROOT))
        for path in _citing_files()
        if re.search(r"DESIGN\.md|DESIGN rule", path.read_text(errors="replace"))
    ]
    assert not outside, f"cite docs/design.md, not a design kept elsewhere: {outside}"


def test_the_citation_finder_sees_the_citations_it_checks():
    cited = {(kind, value) for _, kind, value in _citations()}
    assert ("rule", 5) in cited
    assert any(
        kind == "section" and _normal(value) == "versions never repeat" for kind, value in cited
    )
