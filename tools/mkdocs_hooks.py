"""MkDocs hooks (mkdocs.yml ``hooks:``): the site is built from the repository as it is.

The pages are written to be read on a forge as well: README.md links ``docs/guide.md``
and ``figures/...``, a page in docs/ links ``../figures/...`` and ``../notebooks/...``.
These hooks make the same files a site, without copies in the repository:

* README.md is the home page (``index.md``);
* every notebook (``notebooks/NN_*.ipynb`` and ``notebooks/<profile>/NN_*.ipynb``, not the
  git-ignored smoke profile) is a page, rendered with its committed outputs by
  mkdocs-jupyter (never executed); every figure ``figures/**/*.png`` is a file;
* any other repository file a page links to (``paper/NOTES.md``, a module under ``lib/``)
  is taken in under its repository path (Markdown becomes a page);
* links are rewritten from repository paths to site paths, so ``mkdocs build --strict``
  checks every one of them;
* ``<!-- docstring: lib/synflow/core/masks.py -->`` in a page is replaced by that module's
  docstring (read with ``ast``: building the site imports neither torch nor synflow);
* MathJax comes from the jupyter-server-mathjax package, copied into ``assets/mathjax``
  (mkdocs.yml sets the notebooks' MathJax URL to ``@MATHJAX@/...``), and nbconvert's
  Mermaid loader (a CDN import; no notebook here draws Mermaid) is removed: no page loads
  anything from the network.
"""

from __future__ import annotations

import ast
import posixpath
import re
import shutil
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

SKIPPED_PROFILES = {"smoke"}  # scratch outputs of `make test` (git-ignored)
LINK = re.compile(r"(\]\(|\b(?:src|href)=\")([^)\"\s]+)")
DOCSTRING = re.compile(r"<!-- docstring: (\S+) -->")
MERMAID = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid.*?</script>", re.DOTALL)
MATHJAX = "@MATHJAX@"

# site path (src_uri) -> path in the repository, for every page this hook has to rewrite
_repo_path: dict[str, str] = {}


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def _targets(text: str, repo_path: str):
    """(match, repository path, fragment) of every relative link in ``text``."""
    for match in LINK.finditer(text):
        target = match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:|[#/]", target):  # a URL, an anchor, an absolute path
            continue
        path, _, fragment = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path))
        yield match, resolved, fragment


def _add(files: Files, config, src_uri: str) -> None:
    """The repository file ``src_uri`` as the site's file of that path."""
    if files.get_file_from_path(src_uri) is None:
        # a File rooted at the repository (not File.generated: mkdocs-jupyter's wrapper of a
        # notebook file reads its path from src_dir)
        files.append(File(src_uri, str(_root(config)), config.site_dir,
                          config.use_directory_urls))
    _repo_path[src_uri] = src_uri


def _profile_dirs(root: Path, top: str) -> list[Path]:
    folder = root / top
    subfolders = [p for p in sorted(folder.iterdir()) if p.is_dir()] if folder.is_dir() else []
    return [folder] + [p for p in subfolders if p.name not in SKIPPED_PROFILES]


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns notebooks into pages
def on_files(files: Files, config) -> Files:
    root, docs = _root(config), Path(config.docs_dir).resolve()
    _repo_path.clear()
    for file in files.documentation_pages():
        _repo_path[file.src_uri] = (docs / file.src_uri).relative_to(root).as_posix()
    files.append(File.generated(config, "index.md", abs_src_path=str(root / "README.md")))
    _repo_path["index.md"] = "README.md"
    for folder in _profile_dirs(root, "notebooks"):
        for notebook in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
            _add(files, config, notebook.relative_to(root).as_posix())
    for folder in _profile_dirs(root, "figures"):
        for figure in sorted(folder.glob("*.png")):
            _add(files, config, figure.relative_to(root).as_posix())
    # every other repository file a Markdown page links to (Markdown files found so are
    # pages too, so their links are followed as well)
    pending = [uri for uri in _repo_path if uri.endswith(".md")]
    while pending:
        uri = pending.pop()
        text = (root / _repo_path[uri]).read_text(encoding="utf-8")
        for _, target, _ in _targets(text, _repo_path[uri]):
            if target.startswith(("docs/", "../")) or target in _repo_path:
                continue
            if (root / target).is_file():
                _add(files, config, target)
                if target.endswith(".md"):
                    pending.append(target)
    return files


def _site_path(target: str) -> str | None:
    if target.startswith("docs/"):
        return target[len("docs/"):]
    return target if target in _repo_path else None


def docstring_markdown(text: str) -> str:
    """A docstring as Markdown: ``>>>`` examples fenced as code, Sphinx roles
    (``:func:`name```) as plain code spans; tables and lists are Markdown already."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        if paragraph.lstrip().startswith(">>>"):
            paragraph = f"```pycon\n{paragraph}\n```"
        else:
            paragraph = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", paragraph)
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def on_page_markdown(markdown: str, page, config, files) -> str:
    repo_path = _repo_path.get(page.file.src_uri)
    if repo_path is None:
        return markdown
    root = _root(config)

    def docstring(match: re.Match) -> str:
        source = root / match.group(1)
        text = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")))
        if not text:
            raise ValueError(f"{page.file.src_uri}: {match.group(1)} has no module docstring")
        body = docstring_markdown(text).replace("\n", "\n    ")
        return f'!!! quote "From the docstring of `{match.group(1)}`"\n\n    {body}\n'

    markdown = DOCSTRING.sub(docstring, markdown)
    base = posixpath.dirname(page.file.src_uri) or "."
    pieces, last = [], 0
    for match, target, fragment in _targets(markdown, repo_path):
        site = _site_path(target)
        if site is None:
            continue  # left as written: mkdocs --strict reports it if it is broken
        link = posixpath.relpath(site, base) + (f"#{fragment}" if fragment else "")
        pieces += [markdown[last:match.start(2)], link]
        last = match.end(2)
    return "".join(pieces) + markdown[last:]


def on_post_page(output: str, page, config) -> str:
    depth = page.file.dest_uri.count("/")
    output = output.replace(MATHJAX, posixpath.join(*([".."] * depth + ["assets/mathjax"])))
    return MERMAID.sub("", output)


def on_post_build(config) -> None:
    try:
        import jupyter_server_mathjax
    except ImportError as error:  # the dev extras bring it
        raise RuntimeError("the notebooks' MathJax comes from jupyter-server-mathjax: "
                           "pip install -e '.[dev]'") from error
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(static, Path(config.site_dir) / "assets" / "mathjax", dirs_exist_ok=True)
