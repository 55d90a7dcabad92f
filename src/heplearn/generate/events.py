"""Pythia 8 events as flat NumPy arrays, generated in batches.

``pythia8mc`` returns a batch of events as one awkward array (``Pythia.nextBatch``), so no Python
code runs per event or per particle. We keep two flat views of a batch:

- ``EventRecord``: every particle of the event record (with status, mothers and daughters),
  used to find the truth partons and resonances;
- ``FinalState``: the visible stable particles (neutrinos removed), the input to the detector
  and the jet clustering.

Both carry each particle's production vertex (``vProd``, mm; the origin for particles made at the
collision), which Pythia sets for the products of every decay it does: b and c hadrons decay
with their lifetimes (``ParticleDecays:limitTau0`` keeps only cτ > 10 mm stable), so their
charged daughters start displaced and get impact parameters.

Both are event-major: particles of event ``i`` are ``offsets[i]:offsets[i + 1]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import awkward as ak
import numpy as np

from heplearn.errors import ConfigError, HeplearnError
from heplearn.optional import optional_import

logger = logging.getLogger(__name__)

NEUTRINOS = (12, 14, 16)


@dataclass
class EventRecord:
    """All particles of a batch of events; Pythia's mother/daughter indices are per event."""

    pid: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    offsets: np.ndarray  # (n_events + 1,)
    pthat: np.ndarray  # (n_events,) the hard-process transverse momentum
    vx: np.ndarray | None = None  # production vertex (mm)
    vy: np.ndarray | None = None
    vz: np.ndarray | None = None
    mother2: np.ndarray | None = None  # second mother (a hadron's last string parton); None: not stored

    @property
    def n_events(self) -> int:
        """The number of events."""
        return len(self.offsets) - 1

    def event_of(self, index: np.ndarray) -> np.ndarray:
        """The event number of flat particle indices."""
        return np.searchsorted(self.offsets, index, side="right") - 1


@dataclass
class FinalState:
    """Visible stable particles of a batch of events (flat, event-major)."""

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    pid: np.ndarray
    charge: np.ndarray
    counts: np.ndarray  # particles per event
    vx: np.ndarray | None = None  # production vertex (mm); None: all at the origin
    vy: np.ndarray | None = None
    vz: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        """The number of events."""
        return len(self.counts)

    def vertex(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vx, vy, vz) of every particle, zeros where no vertex is stored."""
        if self.vx is None or self.vy is None or self.vz is None:
            zeros = np.zeros(len(self.px))
            return zeros, zeros, zeros
        return self.vx, self.vy, self.vz

    def __len__(self) -> int:
        return len(self.px)

    def subset(self, keep: np.ndarray) -> FinalState:
        """The particles where ``keep`` (one flag per particle) is true, in the same events."""
        event = np.repeat(np.arange(self.n_events), self.counts)
        return self.take(keep, np.bincount(event[keep], minlength=self.n_events).astype(np.int64))

    def take(self, keep: np.ndarray, counts: np.ndarray) -> FinalState:
        """The particles where ``keep`` (one flag per particle) is true, grouped by ``counts``."""
        vx, vy, vz = self.vertex()
        return FinalState(
            px=self.px[keep],
            py=self.py[keep],
            pz=self.pz[keep],
            energy=self.energy[keep],
            pid=self.pid[keep],
            charge=self.charge[keep],
            counts=counts,
            vx=vx[keep],
            vy=vy[keep],
            vz=vz[keep],
        )


class PythiaGenerator:
    """One initialised Pythia instance that hands out batches of events."""

    def __init__(self, settings: list[str]) -> None:
        from heplearn.generate.variations import captured_stdout, pythia_message

        pythia8mc = optional_import("pythia8mc", "event generation (Pythia 8)")

        # Pythia("", False): no banner, nothing printed at construction.
        self._pythia = pythia8mc.Pythia("", False)
        with captured_stdout() as output:
            for line in settings:
                if not self._pythia.readString(line):
                    reason = pythia_message(output())
                    raise ConfigError(f"Pythia rejected the setting {line!r}" + (f": {reason}" if reason else ""))
        if not self._pythia.init():
            raise HeplearnError("Pythia failed to initialise with settings: " + "; ".join(settings))
        self._charges: dict[int, float] = {}

    def next_batch(self, n_events: int) -> tuple[EventRecord, FinalState]:
        """Generate ``n_events`` events (failed events are skipped by Pythia)."""
        batch = self._pythia.nextBatch(n_events, "skip")
        record = _event_record(batch)
        return record, self._final_state(record)

    def charges(self, pid: np.ndarray) -> np.ndarray:
        """Electric charge (units of e) for each pdg id, from Pythia's particle table."""
        unique, inverse = np.unique(pid, return_inverse=True)
        for code in unique.tolist():
            if code not in self._charges:
                self._charges[code] = float(self._pythia.particleData.charge(code))
        table = np.array([self._charges[code] for code in unique.tolist()], dtype=np.float64)
        return table[inverse] if len(pid) else np.zeros(0)

    def _final_state(self, record: EventRecord) -> FinalState:
        # Final-state particles have positive status in Pythia; neutrinos escape unseen.
        keep = (record.status > 0) & ~np.isin(np.abs(record.pid), NEUTRINOS)
        event = np.repeat(np.arange(record.n_events), np.diff(record.offsets))
        counts = np.bincount(event[keep], minlength=record.n_events)
        pid = record.pid[keep]
        return FinalState(
            px=record.px[keep],
            py=record.py[keep],
            pz=record.pz[keep],
            energy=record.energy[keep],
            pid=pid,
            charge=self.charges(pid),
            counts=counts.astype(np.int64),
            vx=None if record.vx is None else record.vx[keep],
            vy=None if record.vy is None else record.vy[keep],
            vz=None if record.vz is None else record.vz[keep],
        )


def _event_record(batch: ak.Array) -> EventRecord:
    particles = batch["prt"]
    counts = ak.to_numpy(ak.num(particles)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])

    def flat(*path: str) -> np.ndarray:
        column = particles
        for name in path:
            column = column[name]
        return ak.to_numpy(ak.flatten(column))

    def vertex(name: str) -> np.ndarray:
        # vProd is missing (None) for particles made at the origin.
        return ak.to_numpy(ak.fill_none(ak.flatten(particles["vProd"][name]), 0.0)).astype(np.float64)

    pt2hat = ak.to_numpy(batch["info"]["pT2Hat"]).astype(np.float64)
    return EventRecord(
        pid=flat("id").astype(np.int64),
        status=flat("status").astype(np.int64),
        mother1=flat("mother1").astype(np.int64),
        daughter1=flat("daughter1").astype(np.int64),
        daughter2=flat("daughter2").astype(np.int64),
        px=flat("p", "px").astype(np.float64),
        py=flat("p", "py").astype(np.float64),
        pz=flat("p", "pz").astype(np.float64),
        energy=flat("p", "e").astype(np.float64),
        offsets=offsets,
        pthat=np.sqrt(np.maximum(pt2hat, 0.0)),
        vx=vertex("px"),  # pythia8mc names the vertex components like a four-momentum
        vy=vertex("py"),
        vz=vertex("pz"),
        mother2=flat("mother2").astype(np.int64),
    )
