"""The documentation's relative links resolve, and every verl recipe is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
# Pages written on other branches of the project; linked from here, checked once they are present.
PAGES_FROM_OTHER_BRANCHES = {"verl.md", "verl-filtering.md", "trl.md", "main-job.md"}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # not inside code blocks
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+://|#|mailto:", t)]


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_resolve(page):
    missing = []
    for target in relative_links(page):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if path.exists():
            continue
        if path.parent == DOCS and path.name in PAGES_FROM_OTHER_BRANCHES:
            continue
        missing.append(target)
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_index_links_every_algorithm_page_and_the_guides():
    links = set(relative_links(DOCS / "index.md"))
    pages = {f"algorithms/{p.name}" for p in (DOCS / "algorithms").glob("*.md")}
    assert pages <= links
    assert {"verl.md", "verl-filtering.md", "trl.md", "main-job.md", "reproduce.md"} <= links


def test_every_verl_recipe_is_in_the_reproduction_guide():
    text = (DOCS / "reproduce.md").read_text(encoding="utf-8")
    for script in sorted((REPO / "recipes" / "verl").glob("*.sh")):
        if script.name != "common.sh":
            assert f"recipes/verl/{script.name}" in text or f"]({'../recipes/verl/' + script.name})" in text, script.name
