"""PV and battery simulation over a smart-meter load profile: job type ``simulation``."""

from __future__ import annotations

from jobrunner_simulation.jobtype import Simulation
from jobrunner_simulation.params import SimulationParams

__all__ = ["Simulation", "SimulationParams"]
