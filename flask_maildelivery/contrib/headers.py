"""Splitting another mail library's extra headers into the ones the hook passes on and the
ones it builds itself."""

from __future__ import annotations

from collections.abc import Mapping

from ..mime import HOOK_HEADERS


def split_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(headers to pass on, {lower-case name: value} of the ones the hook builds)``.

    ``From`` and ``Reply-To`` among the latter are used as sender and reply-to; ``Date`` and
    ``Message-ID`` are set by the hook itself.
    """
    passed: dict[str, str] = {}
    built: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() in HOOK_HEADERS:
            built[name.lower()] = str(value)
        else:
            passed[name] = str(value)
    return passed, built
