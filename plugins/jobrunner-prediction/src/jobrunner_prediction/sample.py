"""Write real electricity demand as a job input: ``python -m jobrunner_prediction.sample``.

The England & Wales half-hourly demand of Taylor (2003), 5 June to 27 August
2000 (4032 values, MW), as shipped in the pmdarima wheel (the ``realdata``
extra). Timestamps start at midnight British Summer Time (23:00 UTC on
4 June 2000). ``--household`` scales it to a household's size (mean 400 W),
a realistic shape for trying the ``simulation`` job type.

    python -m jobrunner_prediction.sample > demand.json
    python -m jobrunner_prediction.sample --household > household.json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["main", "taylor_readings"]

#: 2000-06-05 00:00 BST (UTC+1), the first half-hour of the data.
START = 960159600
STEP = 1800


def taylor_readings(household: bool = False) -> dict[str, Any]:
    """Return the demand as ``{"readings": [[unix_ts, value], ...], "unit": ...}``.

    Raises:
        ImportError: pmdarima is not installed.
    """
    from pmdarima.datasets import load_taylor

    values = [float(v) for v in load_taylor()]
    unit = "MW"
    if household:
        mean = sum(values) / len(values)
        values = [round(v / mean * 400.0, 1) for v in values]
        unit = "W"
    return {"readings": [[START + STEP * i, v] for i, v in enumerate(values)], "unit": unit}


def main(argv: list[str] | None = None) -> int:
    """Print the sample input as JSON on standard output."""
    parser = argparse.ArgumentParser(prog="python -m jobrunner_prediction.sample")
    parser.add_argument(
        "--household", action="store_true", help="scale to a household (mean 400 W, unit W)"
    )
    args = parser.parse_args(argv)
    try:
        document = taylor_readings(household=args.household)
    except ImportError:
        print(
            "needs pmdarima: pip install './plugins/jobrunner-prediction[realdata]'",
            file=sys.stderr,
        )
        return 1
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
