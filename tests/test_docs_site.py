"""The documentation site: `mkdocs build --strict` (what `make docs` runs) into a temporary
folder, then every notebook page with its outputs, every figure, every link, and nothing
loaded from the network.

Needs the dev extras (mkdocs, mkdocs-material, mkdocs-jupyter, jupyter-server-mathjax):
skipped with the reason where they are missing, except under $CI, where that fails."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ("mkdocs", "material", "mkdocs_jupyter", "jupyter_server_mathjax")
SKIPPED_PROFILES = {"smoke"}


def profile_files(top: str, pattern: str) -> list[Path]:
    """``top/pattern`` and ``top/<profile>/pattern`` (not the git-ignored smoke profile)."""
    found = sorted((ROOT / top).glob(pattern))
    for folder in sorted(p for p in (ROOT / top).iterdir() if p.is_dir()):
        if folder.name not in SKIPPED_PROFILES:
            found += sorted(folder.glob(pattern))
    return found


NOTEBOOKS = profile_files("notebooks", "[0-9][0-9]_*.ipynb")
FIGURES = profile_files("figures", "*.png")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [name for name in BUILDER if importlib.util.find_spec(name) is None]
    if missing:
        message = f"the docs builder is not installed ({', '.join(missing)}): pip install -e '.[dev]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(folder)],
        check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return folder


class Elements(HTMLParser):
    """(tag, attribute, value) of every URL-valued attribute, and inline script texts."""

    def __init__(self):
        super().__init__()
        self.urls, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.urls.append((tag, name, value, dict(attrs)))
        self._in_script = tag == "script" and "src" not in dict(attrs)

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


def parsed(page: Path) -> Elements:
    elements = Elements()
    elements.feed(page.read_text(encoding="utf-8"))
    return elements


def pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_every_notebook_is_a_page_with_its_outputs(site):
    assert len(NOTEBOOKS) >= 10  # 00-06 at the laptop profile, 01-03 at the paper profile
    for notebook in NOTEBOOKS:
        page = site / notebook.relative_to(ROOT).with_suffix(".html")
        assert page.is_file(), f"no page for {notebook.relative_to(ROOT)}"
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        images = sum("image/png" in output.get("data", {})
                     for cell in cells for output in cell.get("outputs", []))
        html = page.read_text(encoding="utf-8")
        assert images > 0, f"{notebook.name} has no figure output: were its outputs committed?"
        assert html.count('src="data:image/png;base64,') == images, notebook.name
        first_text = next("".join(o["text"]).strip().splitlines()[0]
                          for c in cells for o in c.get("outputs", []) if o.get("text"))
        assert first_text.split()[0] in html, notebook.name


def test_every_figure_is_in_the_site_and_shown_on_a_page(site):
    shown = set()
    for page in pages(site):
        for tag, _, value, _ in parsed(page).urls:
            if tag == "img" and not urlsplit(value).scheme:
                shown.add((page.parent / unquote(urlsplit(value).path)).resolve())
    assert FIGURES
    for figure in FIGURES:
        copy = site / figure.relative_to(ROOT)
        assert copy.is_file() and copy.read_bytes() == figure.read_bytes(), figure.name
        assert copy.resolve() in shown, f"{figure.relative_to(ROOT)} is on no page"


def test_every_link_resolves(site):
    broken = []
    for page in pages(site):
        for tag, attribute, value, _ in parsed(page).urls:
            parts = urlsplit(value)
            if parts.scheme or value.startswith(("#", "//")) or not parts.path:
                continue
            # a path from the root (only the 404 page has them: a server shows it anywhere)
            base = site if parts.path.startswith("/") else page.parent
            target = base / unquote(parts.path).lstrip("/")
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: <{tag} {attribute}={value!r}>")
    assert not broken, "\n".join(broken)


def test_no_page_loads_anything_from_the_network(site):
    fetched = []
    for page in pages(site):
        elements = parsed(page)
        for tag, attribute, value, attrs in elements.urls:
            external = urlsplit(value).scheme in ("http", "https") or value.startswith("//")
            loads = tag != "a" and not (tag == "link" and attrs.get("rel") == "canonical")
            if external and loads:
                fetched.append(f"{page.relative_to(site)}: <{tag} {attribute}={value!r}>")
        for script in elements.scripts:
            fetched += [f"{page.relative_to(site)}: script loads {url}"
                        for url in re.findall(r"https?://[^\s\"']+", script)]
    assert not fetched, "\n".join(fetched)
    assert (site / "assets" / "mathjax" / "MathJax.js").is_file()


def test_readme_is_the_home_page_with_the_claims_table(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "The paper's claims" in home and "claims compared with the paper's own numbers" in home
    assert 'href="results.html"' in home and 'src="figures/00_quickstart_kept_per_layer.png"' in home


def test_module_docstrings_are_included(site):
    guide = (site / "guide.html").read_text(encoding="utf-8")
    first_line = (ROOT / "lib/synflow/core/masks.py").read_text().split('"""')[1].splitlines()[0]
    assert first_line.split(",")[0] in guide
    running = (site / "running.html").read_text(encoding="utf-8")
    assert "SYNFLOW_RESULTS" in running and "<table>" in running


def test_docstring_examples_become_code_blocks():
    hooks = _hooks()
    text = "A table:\n\n| a | b |\n|---|---|\n\n>>> f(1)\n2\n\nSee :func:`synflow.prune`."
    assert hooks.docstring_markdown(text) == (
        "A table:\n\n| a | b |\n|---|---|\n\n```pycon\n>>> f(1)\n2\n```\n\nSee `synflow.prune`.")


def _hooks():
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed: pip install -e '.[dev]'")
        pytest.skip("mkdocs is not installed: pip install -e '.[dev]'")
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_repository_links_become_site_links():
    """A page in docs/ links ../figures/a.png (right on a forge); the site has figures/a.png.
    A repository file the site does not carry (../Makefile) is left for --strict to report."""
    hooks = _hooks()  # a fresh module: its table of pages starts empty
    hooks._repo_path.update({"figures/a.png": "figures/a.png", "guide.md": "docs/guide.md"})
    page = type("Page", (), {"file": type("File", (), {"src_uri": "guide.md"})})()
    config = type("Config", (), {"config_file_path": str(ROOT / "mkdocs.yml")})()
    markdown = "[r](results.md#x) ![f](../figures/a.png) [w](https://example.org) [m](../Makefile)"
    assert hooks.on_page_markdown(markdown, page, config, None) == (
        "[r](results.md#x) ![f](figures/a.png) [w](https://example.org) [m](../Makefile)")
