"""The README's minimal host app runs as pasted: its code block is written to ``app.py`` in an
empty folder, the tables are created with the command the README gives, and the app sends
an email and shows it in the log to its administrator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
#: The HTML comment the README puts right before the minimal app's code block.
MARKER = "<!-- the README test runs this block as app.py -->"

#: Runs next to app.py: what a person clicking through the app would see.
DRIVER = textwrap.dedent(
    """
    import json

    import sqlalchemy as sa

    from app import create_app, db
    from flask_maildelivery.models import Email, Recipient

    app = create_app()
    client = app.test_client()
    home = client.get("/")
    sent = client.post("/invoices/42/email")
    with app.app_context():
        email = db.session.scalars(sa.select(Email)).one()
        addresses = sorted(db.session.scalars(sa.select(Recipient.address)))
        email_id, subject, attachments = email.id, email.subject, len(email.attachments)
    log = client.get("/maildelivery/?show=all")
    detail = client.get(f"/maildelivery/{email_id}")
    print(json.dumps({
        "home": home.status_code,
        "sent": [sent.status_code, sent.get_data(as_text=True)],
        "subject": subject,
        "addresses": addresses,
        "attachments": attachments,
        "log": [log.status_code, "Invoice INV-0042" in log.get_data(as_text=True)],
        "detail": [detail.status_code, detail.get_data(as_text=True)],
        "detail_url": f"/maildelivery/{email_id}",
    }))
    """
)


def readme_app() -> str:
    """The Python code block that follows :data:`MARKER` in the README."""
    text = README.read_text()
    assert MARKER in text, f"the README lost the marker {MARKER!r} before the minimal app"
    after = text.split(MARKER, 1)[1].lstrip("\n")
    assert after.startswith("```python\n"), "the marker must sit right before a ```python block"
    return after.removeprefix("```python\n").split("\n```", 1)[0] + "\n"


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter in ``folder``, as a person who pasted the app would."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    result = subprocess.run(
        [sys.executable, "-W", "error", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_readme_app_runs_as_pasted(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(readme_app())
    (tmp_path / "drive.py").write_text(DRIVER)

    upgrade = run(tmp_path, "-m", "flask", "--app", "app", "maildelivery", "db", "upgrade")
    assert "maildelivery schema at" in upgrade.stdout
    assert (tmp_path / "instance" / "erp.db").is_file()

    driven = run(tmp_path, "drive.py")
    # the console transport printed the email before the driver printed its findings
    printed, findings_line = driven.stdout.rstrip("\n").rsplit("\n", 1)
    assert "Subject: Invoice INV-0042" in printed
    findings = json.loads(findings_line)
    assert findings["home"] == 200
    status, body = findings["sent"]
    assert status == 200
    assert findings["detail_url"] in body
    assert findings["subject"] == "Invoice INV-0042"
    assert findings["addresses"] == ["accounting@acme.test", "ann@customer.test"]
    assert findings["attachments"] == 1
    assert findings["log"] == [200, True]
    status, page = findings["detail"]
    assert status == 200
    assert "ann@customer.test" in page
    assert "/customers/7/edit" in page
