"""Log pages and JSON API."""
