"""Smart-meter load prediction as a jobrunner job type (``prediction``)."""

from __future__ import annotations

from jobrunner_prediction.jobtype import Prediction
from jobrunner_prediction.params import PredictionParams

__all__ = ["Prediction", "PredictionParams"]
