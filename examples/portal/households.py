"""The portal's household for PV and battery simulations: its load and its weather, as inputs.

* Load: the real England & Wales half-hourly demand of June-August 2000
  (Taylor, 2003; the same data as the sensors, shipped in pmdarima's wheel),
  scaled to a household's mean of 400 W and placed on the household's clock:
  12 weeks from Monday 5 June 2000, 00:00 at UTC-05:00. Written as JSON
  ``{"unit": "W", "readings": [[unix_ts, W], ...]}``.
* Weather: the typical meteorological year of Greensboro, NC (TMY3 station
  723170, shipped in pvlib's wheel), its June-August hours dated 2000 and
  labelled with the start of each hour, as the CSV the ``simulation`` job
  type reads (``time,ghi,dni,dhi,temp_air,wind_speed``).

A demonstration pairing (a national demand shape on a Carolina roof), not one
real household. Run ``python households.py --inputs-dir DIR`` to write the files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOUSEHOLDS",
    "SITE",
    "UTC_OFFSET",
    "WEATHER_FILE",
    "Household",
    "find_household",
    "write_inputs",
]

#: Greensboro's standard time, seconds east of UTC (TMY3 files use standard time).
UTC_OFFSET = -5 * 3600
#: Monday 5 June 2000, 00:00 at UTC-05:00.
START = 960_181_200
STEP = 1800
WEEKS = 12
WEATHER_FILE = "weather/greensboro-summer-2000.csv"
MEAN_LOAD_W = 400.0
#: Greensboro, NC (TMY3 station 723170).
SITE = {"latitude": 36.1, "longitude": -79.95, "altitude": 273.0}


@dataclass(frozen=True)
class Household:
    """A household of the portal: its load input, and the weather at its roof."""

    id: str
    name: str

    @property
    def file_name(self) -> str:
        return f"households/{self.id}.json"

    def week_start(self, week: int) -> int:
        """Unix time of the start of week ``week`` (0-based)."""
        return START + week * 7 * 86400


HOUSEHOLDS: tuple[Household, ...] = (Household("greensboro-1", "Household in Greensboro, NC"),)


def find_household(household_id: str) -> Household | None:
    """The household with this id, or None."""
    return next((h for h in HOUSEHOLDS if h.id == household_id), None)


def load_document() -> dict[str, object]:
    """The household's load: 12 weeks of half-hourly power in W."""
    from sensors import load_demand

    demand = load_demand()
    mean = sum(demand) / len(demand)
    return {
        "unit": "W",
        "interval": STEP,
        "source": "England & Wales demand, June-August 2000 (Taylor 2003), scaled to 400 W mean",
        "readings": [
            [START + STEP * i, round(value / mean * MEAN_LOAD_W, 1)]
            for i, value in enumerate(demand[: WEEKS * 7 * 48])
        ],
    }


def weather_csv() -> str:
    """Greensboro's TMY3 June-August, dated 2000, one row per hour (its start)."""
    try:
        import pandas as pd
        import pvlib
    except ImportError as exc:
        raise RuntimeError(
            "the household's weather is the TMY3 file in pvlib's wheel: "
            "pip install -e plugins/jobrunner-simulation"
        ) from exc
    path = Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
    frame, _ = pvlib.iotools.read_tmy3(path, coerce_year=2000, map_variables=True)
    frame = frame[["ghi", "dni", "dhi", "temp_air", "wind_speed"]]
    frame.index = frame.index - pd.Timedelta(hours=1)  # TMY3 labels the end of each hour
    first = dt.datetime(2000, 6, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    last = dt.datetime(2000, 9, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    summer = frame[(frame.index >= first) & (frame.index < last)].copy()
    summer.insert(0, "time", [stamp.isoformat() for stamp in summer.index])
    text: str = summer.to_csv(index=False)
    return text


def _write(path: Path, text: str) -> None:
    """Write to a temporary name and rename: the inputs server never serves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def write_inputs(inputs_dir: Path) -> list[Path]:
    """Write each household's load and the weather file; return their paths."""
    load = json.dumps(load_document(), separators=(",", ":"))
    paths = [inputs_dir / household.file_name for household in HOUSEHOLDS]
    for path in paths:
        _write(path, load)
    _write(inputs_dir / WEATHER_FILE, weather_csv())
    return [*paths, inputs_dir / WEATHER_FILE]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs-dir", type=Path, required=True, help="directory to write into")
    args = parser.parse_args(argv)
    try:
        paths = write_inputs(args.inputs_dir)
    except RuntimeError as exc:
        print(f"households: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"households: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
