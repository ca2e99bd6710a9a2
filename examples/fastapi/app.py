"""A FastAPI app on :class:`jobrunner.AsyncClient`: submit, live status, cancel, result link.

A JSON API for other programs, with a small page on top:

``POST /jobs``                 submit ``{"type", "input", "params", "delay"}``; answers the
                               ticket, the status URL and the result URL (201)
``GET /jobs/{ticket}``         the state (queued, running, done, ...) as JSON
``GET /jobs/{ticket}/events``  the state as server-sent events, one per change, until final
``DELETE /jobs/{ticket}``      cancel the job
``GET /``                      a page: a form, then the job's state live (EventSource)

A program that submits keeps the ticket, as it would keep an order number.
Run::

    JOBRUNNER_BEANSTALK=127.0.0.1:11300 RESULTS_BASE_URL=http://127.0.0.1:8080/ \\
        uvicorn app:app

``create_app(client=...)`` takes any client with the async methods; tests pass
``AsyncClient.wrap(InlineClient(...))``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

from jobrunner import AsyncClient, InvalidJob
from jobrunner.errors import QueueError

#: Seconds between two looks at a job's state in the event stream.
POLL = 0.5

PAGE = """<!doctype html>
<meta charset="utf-8"><title>jobrunner with FastAPI</title>
<h1>Submit a job</h1>
<form id="submit">
  <input name="type" value="echo"> <input name="input" size="60" placeholder="input URL">
  <button>Submit</button>
</form>
<p id="state"></p>
<p><a id="result" hidden>the result document</a> <button id="cancel" hidden>Cancel</button></p>
<script>
const state = document.getElementById("state"), link = document.getElementById("result");
const cancel = document.getElementById("cancel");
document.getElementById("submit").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const answer = await fetch("/jobs", {method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({type: form.get("type"), input: form.get("input")})});
  const job = await answer.json();
  if (!answer.ok) { state.textContent = job.detail; return; }
  link.href = job.result;
  cancel.hidden = false;
  cancel.onclick = () => fetch(job.status_url, {method: "DELETE"});
  const events = new EventSource(job.status_url + "/events");
  events.onmessage = (message) => {
    const s = JSON.parse(message.data);
    state.textContent = s.state + (s.error ? " — " + s.error.code : "");
    link.hidden = s.state !== "done";
    if (s.final) { cancel.hidden = true; events.close(); }
  };
};
</script>
"""


class JobRequest(BaseModel):
    """What ``POST /jobs`` takes."""

    type: str = "echo"
    input: str
    params: dict[str, Any] = Field(default_factory=dict)
    delay: int = 0


def _public(status: Any) -> dict[str, Any]:
    answer: dict[str, Any] = status.as_dict()
    answer.pop("document")  # clients read the document from the result URL
    return answer


def create_app(client: Any | None = None, *, results_base_url: str | None = None) -> FastAPI:
    """The app; ``client`` is an :class:`~jobrunner.AsyncClient` (from the environment if None)."""
    if client is None:
        client = AsyncClient(os.environ.get("JOBRUNNER_BEANSTALK", "127.0.0.1:11300"))
    base = results_base_url or os.environ.get("RESULTS_BASE_URL", "http://127.0.0.1:8080/")
    base = base.rstrip("/")
    app = FastAPI(title="jobrunner with FastAPI")

    async def status_of(ticket: str) -> Any:
        try:
            return await client.status(ticket)
        except ValueError:
            raise HTTPException(404, "no such job") from None
        except QueueError as exc:
            raise HTTPException(503, str(exc)) from None

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return PAGE

    @app.post("/jobs", status_code=201)
    async def submit(request: JobRequest) -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        try:
            job = await client.submit(
                request.type,
                request.input,
                f"{base}/api/{job_id}.json",
                request.params,
                id=job_id,
                delay=request.delay,
            )
        except InvalidJob as exc:
            raise HTTPException(422, str(exc)) from None
        except QueueError as exc:
            raise HTTPException(503, str(exc)) from None
        return {
            "job_id": job.job_id,
            "ticket": job.ticket,
            "status_url": f"/jobs/{job.ticket}",
            "result": job.result,
        }

    @app.get("/jobs/{ticket}")
    async def job_status(ticket: str) -> dict[str, Any]:
        return _public(await status_of(ticket))

    @app.get("/jobs/{ticket}/events")
    async def job_events(ticket: str) -> StreamingResponse:
        first = await status_of(ticket)

        async def stream() -> AsyncIterator[str]:
            status, last = first, None
            while True:
                answer = _public(status)
                if answer != last:
                    last = answer
                    yield f"data: {json.dumps(answer)}\n\n"
                if status.final:
                    return
                await asyncio.sleep(POLL)
                status = await status_of(ticket)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.delete("/jobs/{ticket}")
    async def cancel(ticket: str) -> dict[str, Any]:
        try:
            done = await client.cancel(ticket)
        except ValueError:
            raise HTTPException(404, "no such job") from None
        return {"outcome": done.outcome, "message": done.message, "status": _public(done.status)}

    return app


#: For ``uvicorn app:app`` (the client connects on first use).
app = create_app()
