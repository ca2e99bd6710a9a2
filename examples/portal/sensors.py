"""The portal's sensors: weeks of real half-hourly electricity demand, as JSON inputs.

The data is the England & Wales half-hourly demand from 5 June 2000 (12 weeks,
4032 values in MW) studied by J. W. Taylor (2003); it ships inside pmdarima's
wheel, which the prediction plugin's ``realdata`` extra installs. Each sensor
is a different four-week slice of it, written as one JSON document in the
form the ``prediction`` job type reads::

    {"sensor": "...", "name": "...", "unit": "MW", "interval": 1800,
     "readings": [[unix_ts, value], ...]}

One sensor is *offline*: its file is never written, so its input URL answers
404 and a forecast for it fails with ``input_unavailable``.

Run ``python sensors.py --inputs-dir DIR`` to write the files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SENSORS", "Sensor", "find", "load_demand", "write_inputs"]

#: 5 June 2000, 00:00 UTC (a Monday): the first reading of the data set.
START = 960_163_200
STEP = 1800
WEEK = 7 * 48
SOURCE = (
    "England & Wales half-hourly electricity demand (MW), from 5 June 2000; "
    "J. W. Taylor, JORS 54 (2003); data from pmdarima.datasets.load_taylor"
)


@dataclass(frozen=True)
class Sensor:
    """A sensor of the portal: a slice of the demand data, or an offline one."""

    id: str
    name: str
    first_week: int
    weeks: int
    offline: bool = False

    @property
    def file_name(self) -> str:
        return f"sensors/{self.id}.json"

    @property
    def start(self) -> int:
        return START + self.first_week * WEEK * STEP

    @property
    def end(self) -> int:
        """Time of the last reading."""
        return self.start + (self.weeks * WEEK - 1) * STEP


SENSORS: tuple[Sensor, ...] = (
    Sensor("substation-a", "Substation A", first_week=0, weeks=4),
    Sensor("substation-b", "Substation B", first_week=4, weeks=4),
    Sensor("substation-c", "Substation C", first_week=8, weeks=4),
    Sensor("substation-d", "Substation D (offline)", first_week=8, weeks=4, offline=True),
)


def find(sensor_id: str) -> Sensor | None:
    """The sensor with this id, or None."""
    return next((sensor for sensor in SENSORS if sensor.id == sensor_id), None)


def load_demand() -> list[float]:
    """The 4032 half-hourly demand values in MW.

    Raises:
        RuntimeError: pmdarima (the prediction plugin's ``realdata`` extra) is missing.
    """
    try:
        from pmdarima.datasets import load_taylor
    except ImportError as exc:
        raise RuntimeError(
            "the sensors need the real demand data in pmdarima: "
            "pip install -e './plugins/jobrunner-prediction[realdata]'"
        ) from exc
    return [float(value) for value in load_taylor()]


def sensor_document(sensor: Sensor, demand: list[float]) -> dict[str, Any]:
    """The JSON input of one sensor."""
    first = sensor.first_week * WEEK
    values = demand[first : first + sensor.weeks * WEEK]
    return {
        "sensor": sensor.id,
        "name": sensor.name,
        "unit": "MW",
        "interval": STEP,
        "source": SOURCE,
        "readings": [[sensor.start + STEP * i, value] for i, value in enumerate(values)],
    }


def write_inputs(inputs_dir: Path) -> list[Path]:
    """Write the input file of every sensor that is not offline; return their paths.

    Each file is written to a temporary name and renamed into place, so the
    inputs server never serves half a file.
    """
    demand = load_demand()
    written = []
    for sensor in SENSORS:
        path = inputs_dir / sensor.file_name
        if sensor.offline:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(json.dumps(sensor_document(sensor, demand), separators=(",", ":")))
        os.replace(temp, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs-dir", type=Path, required=True, help="directory to write into")
    args = parser.parse_args(argv)
    try:
        paths = write_inputs(args.inputs_dir)
    except RuntimeError as exc:
        print(f"sensors: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"sensors: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
