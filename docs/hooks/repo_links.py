"""MkDocs hook: the site is built from the repository's Markdown as it reads on GitHub.

The front page is README.md and the method cards are callbacks/README.md, both outside docs/: they join the site as
index.md and method-cards.md. Every relative link is written against the repository (so that it works on GitHub) and
rewritten here against the site: a link to README.md, callbacks/README.md or a page of docs/ goes to that page; a link
to any other file of the repository (code, an example, a config) keeps its text and loses the link, since the site
holds no copy of it. A link to a file that does not exist is a warning, so `mkdocs build --strict` fails on it.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.repo_links")

# repository path → the page it is in the site
OUTSIDE_DOCS = {"README.md": "index.md", "callbacks/README.md": "method-cards.md", "CHANGELOG.md": "changelog.md"}
LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _root(config) -> Path:
    return Path(config["config_file_path"]).parent


def on_files(files, config):
    root = _root(config)
    for source, page in OUTSIDE_DOCS.items():
        if (root / source).is_file() and files.get_file_from_path(page) is None:
            files.append(File.generated(config, page, abs_src_path=str(root / source)))
    return files


def _repo_path(page, config) -> str:
    """The repository path of the page's Markdown file."""
    root = _root(config)
    return Path(os.path.relpath(page.file.abs_src_path, root)).as_posix()


def _site_path(repo_path: str, docs: str) -> str | None:
    """The site path of a repository file that is in the site, else None."""
    if repo_path in OUTSIDE_DOCS:
        return OUTSIDE_DOCS[repo_path]
    if repo_path.startswith(docs + "/"):
        return repo_path[len(docs) + 1:]
    return None


def on_page_markdown(markdown, page, config, files):
    root = _root(config)
    docs = Path(os.path.relpath(config["docs_dir"], root)).as_posix()
    here = _repo_path(page, config)
    site_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match) -> str:
        bang, text, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)  # a URL, an anchor on this page, or an absolute path
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(here), path))
        if repo_path.startswith("../") or not (root / repo_path).exists():
            log.warning("%s: a link to '%s', which is not in the repository", here, target)
            return match.group(0)
        site = _site_path(repo_path, docs)
        if site is None:  # a file the site does not hold: its name, unlinked
            return text if not bang else f"`{repo_path}`"
        new = posixpath.relpath(site, site_dir or ".") + (f"#{anchor}" if anchor else "")
        return f"{bang}[{text}]({new})"

    out, fenced = [], False
    for line in markdown.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
        out.append(line if fenced or FENCE.match(line) else LINK.sub(rewrite, line))
    return "\n".join(out)
