"""The documentation site builds without a warning and documents every configuration key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flask_maildelivery.webhooks import all_config_defaults

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    index = (tmp_path / "html" / "index.html").read_text()
    for page in ("quickstart", "tutorial", "configuration", "sending", "signals", "faq"):
        assert f'href="{page}.html"' in index


def test_every_configuration_key_is_in_the_configuration_reference() -> None:
    reference = (DOCS / "configuration.md").read_text()
    documented = {
        line.split("`")[1] for line in reference.splitlines() if line.startswith("| `MAILDELIVERY_")
    }
    missing = sorted(set(all_config_defaults()) - documented)
    assert missing == [], f"add these keys to docs/configuration.md: {', '.join(missing)}"
    for key, default in all_config_defaults().items():
        row = next(line for line in reference.splitlines() if line.startswith(f"| `{key}` |"))
        shown = row.split("|")[2]
        assert repr(default) in shown or str(default) in shown, (
            f"{key}: default {default!r} not in {shown!r}"
        )
