"""Widgets without a browser: a comm that records every message a widget sends.

The kernel side of ipywidgets talks to the browser only through comm messages; recording them
lets tests assert exactly what would reach the page, and ``widget.set_state(...)`` plays the
browser's part.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

_ids = itertools.count()


class RecordingComm:
    """Stands in for a kernel comm; keeps what would have been sent."""

    kernel = "recording"

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = f"comm-{next(_ids)}"
        self.messages: list[tuple[dict, list]] = []

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, callback: Any) -> None:
        pass

    def send(self, data: dict | None = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages.append((data or {}, list(buffers or [])))

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def recording_comms(monkeypatch):
    """Every widget made in the test gets a RecordingComm (reach it as ``widget.comm``)."""
    from ipywidgets.widgets import widget

    monkeypatch.setattr(widget.comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))
    yield


def updates(widget: Any) -> list[tuple[dict, list]]:
    """The state updates a widget sent: (state dict, binary buffers) each."""
    return [
        (msg["state"], buffers)
        for msg, buffers in widget.comm.messages
        if msg.get("method") == "update"
    ]
