"""FastJet, imported once with its start-up banner silenced.

FastJet prints a banner on stdout the first time it clusters. A library must not print, so the
banner goes nowhere; FastJet is credited in the logs and in the provenance of every file instead
(M. Cacciari, G. P. Salam, G. Soyez, Eur. Phys. J. C72 (2012) 1896 [arXiv:1111.6097]).
FastJet is the ``generate`` extra: without it, importing this module (clustering, substructure) is a
``MissingExtraError`` that names it.
"""

from __future__ import annotations

from heplearn.optional import optional_import

fastjet = optional_import("fastjet", "jet clustering and substructure (FastJet)")


def _silence_banner() -> None:
    swig = getattr(fastjet, "_swig", None)
    setter = getattr(getattr(swig, "ClusterSequence", None), "set_fastjet_banner_stream", None)
    if setter is not None:
        setter(None)


_silence_banner()

__all__ = ["fastjet"]
