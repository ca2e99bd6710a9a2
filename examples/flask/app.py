"""A Flask app that submits jobs, shows their state live, cancels them, links the result.

The whole web-server side of jobrunner in one file:

``GET /``                      a form: job type, input URL, params
``POST /jobs``                 submit; the ticket goes into the user's session; 303 to the job
``GET /jobs/<id>``             the job's page: its state, polled live, a cancel button
``GET /jobs/<id>/status``      the state as JSON (what the page polls)
``POST /jobs/<id>/cancel``     cancel the job; JSON

Tickets live in the signed session cookie, keyed by job id: a user can only
see and cancel their own jobs. Run::

    JOBRUNNER_BEANSTALK=127.0.0.1:11300 RESULTS_BASE_URL=http://127.0.0.1:8080/ \\
        flask --app app run

The app takes any object with the client's methods (``create_app(client=...)``):
tests pass a :class:`jobrunner.testing.InlineClient`.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from typing import Any

from flask import Flask, abort, jsonify, redirect, render_template_string, request, session, url_for

from jobrunner import Client, InvalidJob
from jobrunner.errors import QueueError

PAGE = """<!doctype html>
<meta charset="utf-8"><title>jobrunner with Flask</title>
<h1>{{ title }}</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if job_id %}
  <p>Job <code>{{ job_id }}</code>: <strong id="state">{{ state }}</strong>
     <span id="progress"></span></p>
  <p id="error"></p>
  <p><a id="result" href="{{ result }}" hidden>the result document</a></p>
  <button id="cancel" {% if final %}hidden{% endif %}>Cancel</button>
  <script>
  const statusUrl = {{ url_for("job_status", job_id=job_id)|tojson }};
  const cancelUrl = {{ url_for("cancel_job", job_id=job_id)|tojson }};
  function show(s) {
    const cancelling = s.cancel_requested && !s.final ? " (cancelling)" : "";
    document.getElementById("state").textContent = s.state + cancelling;
    document.getElementById("progress").textContent =
      s.state === "running" && s.progress !== null ? Math.round(100 * s.progress) + "%" : "";
    const error = s.error ? s.error.code + ": " + s.error.message : "";
    document.getElementById("error").textContent = error;
    document.getElementById("result").hidden = s.state !== "done";
    document.getElementById("cancel").hidden = s.final;
    return s.final;
  }
  async function poll() {
    const s = await (await fetch(statusUrl)).json();
    if (!show(s)) setTimeout(poll, 1000);
  }
  document.getElementById("cancel").onclick = async () => {
    const answer = await (await fetch(cancelUrl, {method: "POST"})).json();
    show(answer.status);
  };
  poll();
  </script>
{% else %}
  <form method="post" action="{{ url_for('submit') }}">
    <label>Job type <input name="type" value="echo"></label>
    <label>Input URL <input name="input" size="60" value="{{ input_url }}"></label>
    <label>Params (JSON) <input name="params" value="{}"></label>
    <label>Delay (s) <input name="delay" value="0" size="4"></label>
    <button>Submit</button>
  </form>
{% endif %}
"""


def create_app(
    client: Any | None = None,
    *,
    results_base_url: str | None = None,
    input_url: str = "",
    secret_key: str | None = None,
) -> Flask:
    """The app; ``client`` is a :class:`jobrunner.Client` (made from the environment if None)."""
    app = Flask(__name__)
    app.secret_key = secret_key or os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex(16)
    if client is None:
        client = Client(os.environ.get("JOBRUNNER_BEANSTALK", "127.0.0.1:11300"))
    base = (
        results_base_url or os.environ.get("RESULTS_BASE_URL", "http://127.0.0.1:8080/")
    ).rstrip("/")
    app.extensions["jobrunner"] = client

    def ticket_of(job_id: str) -> str:
        ticket = session.get("tickets", {}).get(job_id)
        if ticket is None:
            abort(404)
        return str(ticket)

    @app.get("/")
    def index() -> str:
        return render_template_string(PAGE, title="Submit a job", input_url=input_url, job_id=None)

    @app.post("/jobs")
    def submit() -> Any:
        job_id = str(uuid.uuid4())
        try:
            params = json.loads(request.form.get("params") or "{}")
            job = client.submit(
                request.form.get("type", "echo"),
                request.form.get("input", ""),
                f"{base}/web/{job_id}.json",
                params,
                id=job_id,
                delay=int(request.form.get("delay") or 0),
            )
        except (InvalidJob, ValueError) as exc:
            return render_template_string(PAGE, title="Refused", error=str(exc), job_id=None), 400
        except QueueError as exc:
            return render_template_string(
                PAGE, title="Queue down", error=str(exc), job_id=None
            ), 503
        session["tickets"] = {**session.get("tickets", {}), job.job_id: job.ticket}
        return redirect(url_for("job_page", job_id=job.job_id), code=303)

    @app.get("/jobs/<job_id>")
    def job_page(job_id: str) -> str:
        status = client.status(ticket_of(job_id))
        return render_template_string(
            PAGE,
            title="Your job",
            job_id=job_id,
            state=status.state,
            final=status.final,
            result=status.result,
        )

    @app.get("/jobs/<job_id>/status")
    def job_status(job_id: str) -> Any:
        status = client.status(ticket_of(job_id))
        answer = status.as_dict()
        answer.pop("document")  # the browser reads the document from the result URL
        return jsonify(answer)

    @app.post("/jobs/<job_id>/cancel")
    def cancel_job(job_id: str) -> Any:
        done = client.cancel(ticket_of(job_id))
        status = done.status.as_dict()
        status.pop("document")
        return jsonify({"outcome": done.outcome, "message": done.message, "status": status})

    return app


if __name__ == "__main__":  # pragma: no cover - flask --app app run is the usual way
    create_app().run()
