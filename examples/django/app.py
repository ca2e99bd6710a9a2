"""A Django app that submits jobs, reports their state and cancels them — in one file.

``GET  /``                      a form: job type, input URL, params
``POST /jobs``                  submit; the ticket goes into the user's session; 303 to the job
``GET  /jobs/<id>``             the job's state as JSON: queued, delayed, running, done, ...
``POST /jobs/<id>/cancel``      cancel the job; JSON

In a real project the pieces go where Django puts them: the client into a
module of its own (created once per process and shared by every request —
it is thread-safe), the views into ``views.py``, the URL patterns into
``urls.py``. Tickets live in the session (here the signed-cookie backend, so
no database is needed), keyed by job id: a user only sees and cancels their
own jobs. Run::

    JOBRUNNER_BEANSTALK=127.0.0.1:11300 RESULTS_BASE_URL=http://127.0.0.1:8080/ \\
        python app.py runserver

Tests pass a :class:`jobrunner.testing.InlineClient` to :func:`create_app`.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import uuid
from typing import Any

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from jobrunner import Client, InvalidJob
from jobrunner.errors import QueueError

FORM = """<!doctype html><meta charset="utf-8"><title>jobrunner with Django</title>
<form method="post" action="/jobs">
  <label>Job type <input name="type" value="echo"></label>
  <label>Input URL <input name="input" size="60"></label>
  <label>Params (JSON) <input name="params" value="{}"></label>
  <button>Submit</button>
</form>"""

# Set by create_app(); in a project, a module-level Client in e.g. myproject/jobs.py.
CLIENT: Any = None
RESULTS_BASE_URL = ""


def _ticket(request: HttpRequest, job_id: str) -> str | None:
    ticket = request.session.get("tickets", {}).get(job_id)
    return None if ticket is None else str(ticket)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(FORM)


@require_POST
def submit(request: HttpRequest) -> HttpResponseBase:
    job_id = str(uuid.uuid4())
    try:
        job = CLIENT.submit(
            request.POST.get("type", "echo"),
            request.POST.get("input", ""),
            f"{RESULTS_BASE_URL}django/{job_id}.json",
            json.loads(request.POST.get("params") or "{}"),
            id=job_id,
        )
    except (InvalidJob, ValueError) as exc:  # refused before anything was queued
        return JsonResponse({"error": str(exc)}, status=400)
    except QueueError as exc:  # no beanstalkd server reachable
        return JsonResponse({"error": str(exc)}, status=503)
    request.session["tickets"] = {**request.session.get("tickets", {}), job.job_id: job.ticket}
    return redirect(f"/jobs/{job.job_id}", permanent=False)


@require_GET
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    ticket = _ticket(request, job_id)
    if ticket is None:
        return JsonResponse({"error": "no such job"}, status=404)
    answer = CLIENT.status(ticket).as_dict()
    answer.pop("document")  # the browser reads the document from the result URL itself
    return JsonResponse(answer)


@require_POST
def cancel_job(request: HttpRequest, job_id: str) -> JsonResponse:
    ticket = _ticket(request, job_id)
    if ticket is None:
        return JsonResponse({"error": "no such job"}, status=404)
    done = CLIENT.cancel(ticket)
    return JsonResponse({"outcome": done.outcome, "message": done.message})


urlpatterns = [
    path("", index),
    path("jobs", submit),
    path("jobs/<str:job_id>", job_status),
    path("jobs/<str:job_id>/cancel", cancel_job),
]


def create_app(client: Any | None = None, *, results_base_url: str | None = None) -> Any:
    """Configure Django for this one-file project and return its WSGI application."""
    global CLIENT, RESULTS_BASE_URL
    CLIENT = client or Client(os.environ.get("JOBRUNNER_BEANSTALK", "127.0.0.1:11300"))
    base = results_base_url or os.environ.get("RESULTS_BASE_URL", "http://127.0.0.1:8080/")
    RESULTS_BASE_URL = base.rstrip("/") + "/"
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_hex(32),
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            INSTALLED_APPS=["django.contrib.sessions"],
            MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
            SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
            # Forms post from the same page; a real project keeps CSRF protection on
            # and sends the token with its form.
        )
        django.setup()
    else:  # configured by an earlier create_app (the tests load this file more than once)
        from django.urls import clear_url_caches

        clear_url_caches()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


if __name__ == "__main__":  # pragma: no cover - python app.py runserver
    from django.core.management import execute_from_command_line

    create_app()
    execute_from_command_line(sys.argv)
