"""Sphinx configuration of the flask-maildelivery documentation (MyST markdown, furo theme)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

project = "flask-maildelivery"
author = "flask-maildelivery contributors"
copyright = "flask-maildelivery contributors"

try:
    from flask_maildelivery import __version__ as release
except ImportError:  # building the docs without the package installed
    release = "0.1.0"
version = release

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

html_theme = "furo"
html_title = "flask-maildelivery"
html_static_path = ["_static"]


# Some pages and screenshots are written alongside the code they describe (a provider's page
# with its webhook adapter, a screenshot by the browser test of its page). Until one exists,
# the toctree glob or image that names it is left out instead of failing the build.
_GLOB_LINE = re.compile(r"^[\w/.-]*\*$")
_IMAGE_LINE = re.compile(r"^!\[[^\]]*\]\((_static/[^)]+)\)$")


def _drop_missing(app: Any, docname: str, source: list[str]) -> None:
    kept = []
    for line in source[0].splitlines():
        text = line.strip()
        base = HERE / Path(docname).parent
        if _GLOB_LINE.match(text) and not any(base.glob(text + ".md")):
            continue
        image = _IMAGE_LINE.match(text)
        if image and not (HERE / image.group(1)).is_file():
            continue
        kept.append(line)
    source[0] = "\n".join(kept) + "\n"


def setup(app: Any) -> None:
    """Connect the filter above."""
    app.connect("source-read", _drop_missing)
