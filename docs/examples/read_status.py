"""Read a job's result document from its result URL and act on its status."""

import httpx

from jobrunner import ResultDocument, decode_result


def read_status(result_url: str) -> ResultDocument | None:
    """The job's current result document, or None while it has none (still queued)."""
    response = httpx.get(result_url, timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return decode_result(response.content)


def describe(doc: ResultDocument | None) -> str:
    """One line for the user: queued, running with progress, done or failed."""
    if doc is None:
        return "queued"
    if doc.status == "running":
        return f"running: {100 * (doc.progress or 0):.0f} % {doc.message or ''}".rstrip()
    if doc.status == "failed" and doc.error is not None:
        return f"failed ({doc.error.code}): {doc.error.message}"
    return f"done at {doc.timestamp.isoformat()}: {doc.data!r}"


if __name__ == "__main__":
    print(describe(read_status("https://results.example.org/forecasts/42.json")))
