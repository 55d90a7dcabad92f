"""Progress bars that suit where the output goes: drawn on a terminal, logged lines in a log file.

A tqdm bar redraws itself many times a second; written to a file (``heplearn train ... > log 2>&1``,
a batch job, CI) every redraw becomes a line and a log holds thousands of them. ``progress_bar``
takes tqdm's arguments and returns a tqdm bar when its output is a terminal (or a notebook), and
otherwise a ``LogProgress``: the same interface, which logs one line when it closes (per epoch, per
file) and one line at most every ``interval`` seconds on the way, through ``logging`` (logger
``heplearn.progress``), so the caller's logging configuration decides where the lines go.

The environment variable ``HEPLEARN_PROGRESS`` overrides the choice: ``bar`` (always draw), ``log``
(always log lines) or ``off`` (neither); ``auto`` (the default) chooses as above.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from tqdm.auto import tqdm

from heplearn.errors import ConfigError

log = logging.getLogger("heplearn.progress")
ENVIRONMENT_VARIABLE = "HEPLEARN_PROGRESS"
MODES = ("auto", "bar", "log", "off")
LOG_INTERVAL = 30.0  # seconds between two progress lines of one long-running bar


def progress_mode() -> Literal["bar", "log", "off"]:
    """How progress is shown here: ``HEPLEARN_PROGRESS``, or ``bar`` on a terminal and ``log`` otherwise."""
    chosen = os.environ.get(ENVIRONMENT_VARIABLE, "auto").strip().lower() or "auto"
    if chosen not in MODES:
        raise ConfigError(f"{ENVIRONMENT_VARIABLE}={chosen!r}: choose one of {', '.join(MODES)}")
    if chosen == "auto":
        return "bar" if _interactive() else "log"
    return chosen  # type: ignore[return-value]


def _interactive() -> bool:
    """Whether a drawn bar is seen as one line: stderr (where tqdm draws) is a terminal, or a notebook."""
    stream = sys.stderr
    if stream is not None and hasattr(stream, "isatty") and stream.isatty():
        return True
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    return bool(get_ipython and type(get_ipython()).__name__ == "ZMQInteractiveShell")


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    disable: bool = False,
    log_summary: bool = True,
    interval: float = LOG_INTERVAL,
    **options: Any,
) -> Any:
    """A tqdm bar on a terminal, a ``LogProgress`` elsewhere (see the module docstring).

    ``options`` are tqdm's (``total``, ``desc``, ``unit``, ``initial``, ``leave``, ...). ``log_summary=False``
    drops the closing line of a ``LogProgress`` where the caller logs its own (the trainer's epoch line).
    """
    mode = progress_mode()
    if mode == "bar" or disable:
        return tqdm(iterable, disable=disable, **options)
    return LogProgress(
        iterable,
        total=options.get("total"),
        desc=options.get("desc") or "",
        unit=options.get("unit", "it"),
        initial=options.get("initial", 0),
        enabled=mode == "log",
        summary=log_summary,
        interval=interval,
    )


class LogProgress:
    """tqdm's interface (``update``, ``set_postfix``, ``close``, iteration, ``n``) as a few log lines."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        enabled: bool = True,
        summary: bool = True,
        interval: float = LOG_INTERVAL,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n: float = initial
        self.initial = initial
        self.enabled = enabled
        self.summary = summary
        self.interval = interval
        self.postfix = ""
        self.closed = False
        self.started = time.monotonic()
        self._last_line = self.started

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Count ``n`` more done; log a line if ``interval`` seconds have passed since the last one."""
        self.n += n
        self.refresh(force=False)

    def refresh(self, force: bool = True) -> None:
        """Log the current state now (``force``), or only if the last line is ``interval`` seconds old."""
        now = time.monotonic()
        if force or now - self._last_line >= self.interval:
            self._last_line = now
            self._emit("")

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **values: Any) -> None:
        """Remember figures shown after the count (``loss=0.31``), as tqdm's ``set_postfix``."""
        del refresh  # a log line is written on the next interval or at the end, not on every change
        figures = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{key} {value}" for key, value in figures.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        """Remember ``text`` to show after the count."""
        del refresh
        self.postfix = text

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Rename the bar."""
        del refresh
        self.desc = desc or ""

    def write(self, text: str) -> None:
        """Log ``text`` (tqdm.write's counterpart)."""
        if self.enabled:
            log.info("%s", text)

    def close(self) -> None:
        """Log the closing line (once), unless the bar was made with ``summary=False``."""
        if self.closed:
            return
        self.closed = True
        if self.summary:
            self._emit(" done")

    def line(self, suffix: str = "") -> str:
        """The text of one progress line: what, how many of how many, the time and the rate."""
        seconds = time.monotonic() - self.started
        done = self.n - self.initial
        count = f"{_number(self.n)}/{_number(self.total)}" if self.total else _number(self.n)
        rate = f", {done / seconds:.3g} {self.unit}/s" if seconds > 0 and done > 0 else ""
        text = f"{self.desc + ': ' if self.desc else ''}{count} {self.unit}{suffix} in {seconds:.1f} s{rate}"
        return f"{text} ({self.postfix})" if self.postfix else text

    def _emit(self, suffix: str) -> None:
        if self.enabled:
            log.info("%s", self.line(suffix))


def _number(value: float | None) -> str:
    return f"{value:g}" if value is not None else "?"
