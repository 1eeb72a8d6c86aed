"""The docs site (docs/, mkdocs.yml) and the README that fronts it: nothing dropped, every pointer resolves.

`make test` also builds the site with `mkdocs build --strict` (scripts/test.sh), which fails on a broken
link or anchor between pages; these tests cover what that build cannot see: the README (outside the
site), pointers to docs pages from code and messages, and the sections the README had before the split.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Every heading of the README before it became a front page (main at 1b582e3), and the bold lead-ins
# that served as headings there. Each must stay a heading somewhere in docs/*.md: a page may be
# rewritten freely, but a section cannot silently disappear. Add to this list, never remove from it.
OLD_README_HEADINGS = [
    "tfbox",
    "What `make up` does",
    "No Docker Hub?",
    "Using the notebook",
    "Configuration",
    "GPUs",
    "CUDA compatibility",
    "GPU health",
    "Idle kernels",
    "What is kept",
    "Seats",
    "The GPU ledger",
    "Across stacks",
    "Security",
    "Who gets what",
    "Hardening",
    "The notebook still runs as root",
    "Machines: one stack each",
    "PR previews",
    "Fleet",
    "Machines over SSH",
    "Isolation between stacks",
    "Doctor and repair",
    "After a Docker daemon crash the lab comes back by itself",
    "Troubleshooting",
    "What the tests prove",
    "The toolchain, and the dependencies",
]

HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def normalise(title: str) -> str:
    """Case, backticks and a trailing full stop, question mark or colon do not make another heading."""
    return title.replace("`", "").strip().rstrip(".?:").strip().casefold()


def headings(path: Path) -> list[str]:
    """The Markdown headings of a file, outside fenced code blocks (where `# comment` is not a heading)."""
    found, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced or line.startswith("    ") else HEADING.match(line)
        if m:
            found.append(m.group(1))
    return found


def anchors(path: Path) -> set[str]:
    """The ids Python-Markdown's toc gives the headings (what `page.md#anchor` must name)."""
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in headings(path)}


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_every_old_readme_heading_is_a_heading_in_the_docs():
    present = {normalise(h) for page in doc_pages() for h in headings(page)}
    missing = [h for h in OLD_README_HEADINGS if normalise(h) not in present]
    assert not missing, f"sections of the old README missing from docs/*.md (as headings): {missing}"


def test_the_heading_check_can_fail(tmp_path: Path):
    page = tmp_path / "p.md"
    page.write_text("# Seats\n\n```bash\n# GPUs\n```\n\n    # Fleet\n\n## `make up` what?\n")
    assert [normalise(h) for h in headings(page)] == ["seats", "make up what"]


def test_readme_keeps_the_two_setup_commands_first():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "# tfbox"
    commands = [line.split("#")[0].strip() for line in lines[:8] if line.startswith("    make ")]
    assert commands == ["make up", "make test"]


def _relative_links(text: str) -> list[str]:
    links = []
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if not re.match(r"^[a-z]+:", target) and not target.startswith("<"):
            links.append(target)
    return links


@pytest.mark.parametrize("source", ["README.md", "CHANGELOG.md", "tests/e2e/README.md", "bench/README.md"])
def test_links_outside_the_site_resolve(source: str):
    """Files GitHub shows beside the site: each relative link names a file that exists, and its anchor a heading."""
    base = (ROOT / source).parent
    for target in _relative_links((ROOT / source).read_text()):
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else ROOT / source
        assert file.exists(), f"{source}: link to {target}: no such file"
        if anchor:
            assert anchor in anchors(file), f"{source}: link to {target}: no such heading in {file.name}"


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    for page in doc_pages():
        if page.name != "index.md":
            assert f"(docs/{page.name}" in readme, f"README's 'where to go next' lacks docs/{page.name}"


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = {next(iter(item.values())) for item in config["nav"]}
    assert nav == {p.name for p in doc_pages()}


def test_the_site_builds_offline():
    """No web fonts and no external scripts: the site builds and shows without the internet."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["font"] is False
    for runner in ("Makefile", "scripts/test.sh"):
        assert re.search(r"mkdocs\" build --strict|mkdocs build --strict", (ROOT / runner).read_text()), runner
    assert not config.get("extra_javascript")
    for css in config.get("extra_css", []):
        assert (DOCS / css).is_file() and "://" not in (DOCS / css).read_text(), f"{css}: local, fetching nothing"
    snippets = next(e for e in config["markdown_extensions"] if isinstance(e, dict) and "pymdownx.snippets" in e)
    assert snippets["pymdownx.snippets"]["url_download"] is False


def test_pictures_are_self_contained_svg():
    pictures = sorted((DOCS / "img").glob("*.svg"))
    assert len(pictures) >= 2
    used = "\n".join(p.read_text() for p in doc_pages())
    for svg in pictures:
        assert f"img/{svg.name}" in used, f"{svg.name} is not shown on any page"
        tree = ET.parse(svg)
        for element in tree.iter():
            assert not element.tag.endswith("script"), f"{svg.name}: no scripts in pictures"
            for name, value in element.attrib.items():
                if name.endswith("href"):
                    assert value.startswith("#"), f"{svg.name}: {value}: a picture fetches nothing"


POINTER_SOURCES = ["components", "ops", "scripts", "policy", "templates", "toolchain", ".github", "tests", "bench", "tools"]


def _text_files() -> list[Path]:
    files = [ROOT / "__main__.py", ROOT / "Makefile", ROOT / "Pulumi.yaml", ROOT / "CHANGELOG.md", *doc_pages()]
    for top in POINTER_SOURCES:
        files += [p for p in (ROOT / top).rglob("*") if p.is_file() and p.suffix in {".py", ".sh", ".md", ".yml", ".yaml", ""}]
    return [f for f in files if "__pycache__" not in f.parts]


def test_pointers_to_docs_pages_resolve():
    """Messages and comments that send a user to docs/<page>.md (and its section) name a page that exists."""
    pointer = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")
    for file in _text_files():
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        for m in pointer.finditer(text):
            page = DOCS / m.group(1)
            assert page.exists(), f"{file.relative_to(ROOT)} points at docs/{m.group(1)}, which does not exist"
            if m.group(2):
                assert m.group(2) in anchors(page), f"{file.relative_to(ROOT)}: docs/{m.group(1)}#{m.group(2)}"


def test_no_pointer_into_a_readme_section_that_moved():
    """`README, "Seats"` or `the README's Seats` in code would send a user to a section that is now in docs/."""
    moved = re.compile(r"""README(?:'s|,)\s+["“]?([A-Z][\w -]+)""")
    readme = {normalise(h) for h in headings(ROOT / "README.md")}
    for file in _text_files():
        if file.name in {"CHANGELOG.md", "test_docs.py"}:
            continue  # the CHANGELOG's released entries say where things were then
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        for m in moved.finditer(text):
            title = m.group(1).strip()
            assert normalise(title) in readme, \
                f"{file.relative_to(ROOT)}: points at the README's {title!r}, which is in docs/ now"


def _docs_build_args() -> list[str]:
    """The arguments scripts/test.sh (so `make test` and CI) gives `mkdocs build`."""
    m = re.search(r'mkdocs" (build[^#\n]*)', (ROOT / "scripts/test.sh").read_text())
    assert m, "scripts/test.sh builds the docs site"
    return m.group(1).split()


def _build_copy(tmp_path: Path, extra: str = "") -> subprocess.CompletedProcess[str]:
    """`mkdocs build` as scripts/test.sh runs it, on a copy of the site (plus `extra` on the home page)."""
    for rel in ("mkdocs.yml", "tests/e2e/README.md", "bench/README.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(DOCS, tmp_path / "docs")
    with (tmp_path / "docs" / "index.md").open("a") as f:
        f.write(extra)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "mkdocs"), *_docs_build_args()],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_the_strict_build_passes_and_fails_on_a_broken_anchor(tmp_path: Path):
    """The CI build really is a gate: the site builds as it is, and one broken anchor fails it
    (`--quiet` beside `--strict` would hide the warning and pass)."""
    assert "--strict" in _docs_build_args() and "--quiet" not in _docs_build_args() and "-q" not in _docs_build_args()
    ok = _build_copy(tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "ok" / "build" / "site" / "configuration" / "index.html").is_file()
    broken = _build_copy(tmp_path / "broken", "\n[gone](security.md#no-such-section)\n")
    assert broken.returncode != 0 and "no-such-section" in broken.stderr
