"""Pythia setting changes: any ``KEY = VALUE`` setting, and named variations for the usual systematics.

A variation is a list of Pythia settings read after the process card, so that a "nominal" and a
"varied" sample come from one command each. The named variations (the keys are those of the
Pythia 8.3 manual, https://pythia.org/latest-manual/, pages "Timelike Showers", "Spacelike
Showers" and "Fragmentation"):

``fsr-up`` / ``fsr-down``
    Final-state radiation with the renormalisation scale of its α_s varied by a factor 2:
    ``TimeShower:renormMultFac`` multiplies the pT² at which α_s is evaluated, so μ_R × ½ (× 2) is
    0.25 (4). More (less) radiation: wider jets with more constituents. This is the μ_R variation
    of Pythia's own automated shower uncertainties (Mrenna, Skands, PRD 94 (2016) 074005,
    arXiv:1605.08352).
``fsr-alphas-up`` / ``fsr-alphas-down``
    ``TimeShower:alphaSvalue`` from the Monash value 0.1365 to 0.16 (0.113, symmetric), the α_s(m_Z)
    of the FSR shower; 0.1365 vs 0.16 is the DCTR reweighting benchmark (Andreassen, Nachman,
    PRD 101 (2020) 091901, arXiv:1907.08209).
``isr-up`` / ``isr-down``
    Initial-state radiation with μ_R × ½ (× 2): ``SpaceShower:renormMultFac`` 0.25 (4).
``hadronization``
    Another Lund fragmentation function, f(z) ∝ (1 − z)^a / z · exp(−b m_T² / z): ``StringZ:aLund``
    0.68 → 0.50 and ``StringZ:bLund`` 0.98 → 0.80 (Monash: arXiv:1404.5630). A test point for the
    hadronisation model, not a tuned eigen-variation.

Settings given with ``--pythia KEY=VALUE`` come after the variation, so they win. Every setting is
checked against Pythia's own settings database before any event is made (``check_settings``):
an unknown key, a value Pythia cannot read or one out of its allowed range is a ``ConfigError``
that quotes Pythia's reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence

from heplearn.errors import ConfigError
from heplearn.optional import optional_import

VARIATIONS: dict[str, tuple[str, ...]] = {
    "fsr-up": ("TimeShower:renormMultFac = 0.25",),
    "fsr-down": ("TimeShower:renormMultFac = 4",),
    "fsr-alphas-up": ("TimeShower:alphaSvalue = 0.16",),
    "fsr-alphas-down": ("TimeShower:alphaSvalue = 0.113",),
    "isr-up": ("SpaceShower:renormMultFac = 0.25",),
    "isr-down": ("SpaceShower:renormMultFac = 4",),
    "hadronization": ("StringZ:aLund = 0.50", "StringZ:bLund = 0.80"),
}

# The words Pythia reads as a boolean (Settings::boolString); anything else silently means "off".
_BOOLEAN_WORDS = {"on", "off", "yes", "no", "true", "false", "ok", "1", "0"}
_PYTHIA_MESSAGE = re.compile(r"PYTHIA (?:Error|Warning)(?: in \S+)?:\s*(.*)")


def variation_settings(name: str | None) -> tuple[str, ...]:
    """The Pythia settings of the named variation (none for ``None`` or ``"nominal"``)."""
    if name is None or name == "nominal":
        return ()
    settings = VARIATIONS.get(name.strip().lower())
    if settings is None:
        raise ConfigError(f"unknown variation {name!r}: choose from nominal, {', '.join(VARIATIONS)}")
    return settings


def parse_setting(text: str) -> str:
    """``"KEY=VALUE"`` (or ``"KEY = VALUE"``) as the line Pythia reads, ``"KEY = VALUE"``."""
    key, separator, value = str(text).partition("=")
    key, value = key.strip(), value.strip()
    if not separator or not key or not value:
        raise ConfigError(f"Pythia setting {text!r}: expected KEY=VALUE, e.g. TimeShower:alphaSvalue=0.16")
    return f"{key} = {value}"


def parse_settings(texts: Iterable[str]) -> tuple[str, ...]:
    """Every ``key = value`` Pythia setting of ``texts``, checked (see ``parse_setting``)."""
    return tuple(parse_setting(text) for text in texts)


def check_settings(settings: Sequence[str]) -> None:
    """Read ``settings`` into a scratch Pythia; a ``ConfigError`` quoting Pythia's reason if one fails.

    Pythia reports on stdout; that output is captured (a library prints nothing) and its first
    message becomes part of the error.
    """
    if not settings:
        return
    pythia8mc = optional_import("pythia8mc", "event generation (Pythia 8)")

    with captured_stdout() as output:
        pythia = pythia8mc.Pythia("", False)
        for line in settings:
            key, _, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if pythia.settings.isFlag(key) and value.lower() not in _BOOLEAN_WORDS:
                raise ConfigError(f"Pythia setting {line!r}: {key} is on/off, got {value!r}")
            if not pythia.readString(line):
                sys.stdout.flush()
                reason = pythia_message(output())
                raise ConfigError(f"Pythia rejected the setting {line!r}" + (f": {reason}" if reason else ""))


def pythia_message(text: str) -> str:
    """The last PYTHIA error or warning in ``text``, on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for number, line in reversed(list(enumerate(lines))):
        match = _PYTHIA_MESSAGE.search(line)
        if match:
            reason = match.group(1).rstrip(":")
            return reason if reason else (lines[number + 1] if number + 1 < len(lines) else "")
    return ""


@contextlib.contextmanager
def captured_stdout() -> Iterator[Callable[[], str]]:
    """Send the process's file descriptor 1 (Pythia's C++ ``std::cout``) to a temporary file.

    Yields a function that returns what was written so far.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)

        def read() -> str:
            sink.seek(0)
            return sink.read().decode(errors="replace")

        try:
            yield read
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
