"""The portal's PV and battery simulations: the form, the submission, the page that follows.

``GET /simulate`` shows the form (household, PV size and orientation,
battery, tariff); ``POST /simulate`` submits a ``simulation`` job with the
household's load and weather as named inputs and redirects to
``GET /simulations/<id>?household=H``, whose page follows the job with
``static/follow.js`` and draws a chosen week with ``static/simulation.js``:
PV, load and grid exchange in kW, the battery's state of charge in kWh.

Numbers are passed on as typed (a number when it parses as one): the job
type validates its params, and a bad one comes back as ``invalid_params`` on
the job's page.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from households import HOUSEHOLDS, SITE, UTC_OFFSET, WEATHER_FILE, WEEKS, Household

__all__ = ["FIELDS", "form_page", "simulation_page", "submit"]

#: The form's fields: (name, label, default).
FIELDS = (
    ("pv_kwp", "PV size (kWp)", "3"),
    ("tilt", "Tilt (°)", "30"),
    ("azimuth", "Azimuth (°, 180 = south)", "180"),
    ("battery_kwh", "Battery (kWh)", "5"),
    ("import_price", "Import price (per kWh)", "0.30"),
    ("export_price", "Export price (per kWh)", "0.08"),
)
LOCAL = dt.timezone(dt.timedelta(seconds=UTC_OFFSET))
# The worker stops a simulation that takes longer than this (12 weeks take well under a second).
JOB_TIMEOUT = 300


def _value(text: str) -> Any:
    """A number when the text is one, else the text itself (for the job type to refuse)."""
    try:
        return float(text)
    except ValueError:
        return text


def params_from(form: dict[str, list[str]]) -> dict[str, Any]:
    """The job's params from the submitted form."""
    value = {name: _value(form.get(name, [default])[0].strip()) for name, _, default in FIELDS}
    return {
        **SITE,
        "pv_kwp": value["pv_kwp"],
        "tilt": value["tilt"],
        "azimuth": value["azimuth"],
        "battery_kwh": value["battery_kwh"],
        "max_charge_kw": 3.0,
        "max_discharge_kw": 3.0,
        "tariff": {
            "import": value["import_price"],
            "export": value["export_price"],
            "timezone": "America/New_York",
        },
    }


def submit(portal: Any, household: Household, form: dict[str, list[str]]) -> str:
    """Put a ``simulation`` job for ``household``; return its id.

    Raises:
        InvalidJob: the job document is invalid.
        QueueError: beanstalkd did not take the job.
    """
    job_id = str(uuid.uuid4())
    portal.client.submit(
        "simulation",
        {
            "load": portal.inputs_url + household.file_name,
            "weather": portal.inputs_url + WEATHER_FILE,
        },
        portal.result_url(job_id),
        params_from(form),
        id=job_id,
        timeout=JOB_TIMEOUT,
        meta={"household": household.id, "portal": "example"},
    )
    return job_id


def form_page(esc: Any) -> str:
    """The body of the simulation form."""
    households = "".join(f'<option value="{esc(h.id)}">{esc(h.name)}</option>' for h in HOUSEHOLDS)
    fields = "".join(
        f'<label>{esc(label)} <input name="{esc(name)}" id="{esc(name)}" value="{esc(default)}"'
        ' required maxlength="16" size="6"></label>'
        for name, label, default in FIELDS
    )
    return f"""
<h1>PV and battery</h1>
<p>What would PV and a battery do for this household, and what would the battery save?
The load is real half-hourly demand (England &amp; Wales, June&ndash;August 2000, Taylor 2003)
scaled to a household of 400 W on average; the weather is Greensboro's typical
meteorological year (TMY3, in pvlib). The worker models the PV with pvlib's PVWatts chain.</p>
<form id="simulation-form" method="post" action="/simulate">
<label>Household <select name="household" id="household">{households}</select></label>
{fields}
<button type="submit" id="simulate">Simulate</button>
</form>
<p class="note">The simulation runs on a worker; the next page follows it there.</p>
"""


def simulation_page(esc: Any, job_id: str, result_url: str, household: Household) -> str:
    """The body of the page that follows a simulation job and draws a chosen week."""
    weeks = "".join(
        f'<option value="{week}">Week {week + 1}: from '
        f"{dt.datetime.fromtimestamp(household.week_start(week), LOCAL):%a %d %b}"
        "</option>"
        for week in range(WEEKS)
    )
    return f"""
<h1>Simulation for {esc(household.name)}</h1>
<div id="job" data-job-id="{esc(job_id)}" data-result-url="{esc(result_url)}"
 data-view="simulation" data-utc-offset="{UTC_OFFSET}" data-status="submitted">
<p>Job <code>{esc(job_id)}</code> · result document
 <a id="result-link" href="{esc(result_url)}">{esc(result_url)}</a></p>
<div id="state">
<p id="status-text">Submitted; waiting for a worker…</p>
<progress id="progress" max="1"></progress>
</div>
<div id="error" role="alert" hidden>
<p><strong>The simulation failed:</strong> <code id="error-code"></code></p>
<p id="error-message"></p>
</div>
<figure id="chart-box" hidden>
<label>Week <select id="week">{weeks}</select></label>
<div id="chart"></div>
<figcaption id="summary"></figcaption>
<table id="totals"><tbody></tbody></table>
</figure>
</div>
<p><a href="/simulate">Another simulation</a></p>
"""
