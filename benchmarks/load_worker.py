"""The Celery app the load benchmark's workers run: ``celery -A load_worker:celery_app worker``
(see ``load_host.py``)."""

from __future__ import annotations

from load_host import create_app

app = create_app()
celery_app = app.extensions["celery"]
