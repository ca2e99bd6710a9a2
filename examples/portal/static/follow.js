/* Follow a job from the browser: poll its result document straight from the
 * worker's results server (another origin, read through CORS), show the
 * progress while it runs, then draw the chart — or show the error code.
 *
 * The page's <div id="job"> carries the URLs (data-result-url,
 * data-history-url) and, on a simulation's page, data-view="simulation": its
 * result is drawn by SimulationView (simulation.js). While it works this
 * script records on that element:
 * data-status (the last status seen), data-fetched-from (the URL the result
 * document was read from) and data-statuses (every status seen, in order).
 *
 * With data-state-url (a job submitted through this portal) it also asks the
 * portal for the job's state while no document is published — queued,
 * delayed, running, cancelled — and data-cancel-url makes the Cancel button
 * cancel the job.
 */
(function () {
  "use strict";

  const POLL_MS = 500;
  const GIVE_UP_MS = 15 * 60 * 1000;
  const HISTORY_DAYS = 3;

  const job = document.getElementById("job");
  const resultUrl = job.dataset.resultUrl;
  const statusText = document.getElementById("status-text");
  const progress = document.getElementById("progress");
  const cancelButton = document.getElementById("cancel");
  const started = Date.now();
  let lastEtag = null;
  let stopped = false;

  if (cancelButton) {
    cancelButton.hidden = !job.dataset.cancelUrl;
    cancelButton.onclick = async () => {
      cancelButton.disabled = true;
      try {
        const response = await fetch(job.dataset.cancelUrl, { method: "POST" });
        const answer = await response.json();
        if (answer.outcome === "cancelled") return cancelled();
        statusText.textContent = answer.message || `Cancel answered ${response.status}`;
      } catch (error) {
        statusText.textContent = "The portal cannot be reached; try again.";
      }
      cancelButton.disabled = false;
    };
  }

  function cancelled() {
    stopped = true;
    if (cancelButton) cancelButton.hidden = true;
    progress.hidden = true;
    setStatus("cancelled", "Cancelled: this forecast will not be computed.");
  }

  /* The portal's word on a job without a document: queued, delayed, running, ... */
  async function portalState() {
    if (!job.dataset.stateUrl) return null;
    try {
      const response = await fetch(job.dataset.stateUrl, { cache: "no-store" });
      return response.ok ? await response.json() : null;
    } catch (error) {
      return null;
    }
  }

  function show(id, visible) {
    document.getElementById(id).hidden = !visible;
  }

  function setStatus(status, message) {
    job.dataset.status = status;
    const seen = job.dataset.statuses ? job.dataset.statuses.split(" ") : [];
    if (seen[seen.length - 1] !== status) job.dataset.statuses = seen.concat(status).join(" ");
    if (message !== undefined) statusText.textContent = message;
  }

  /* The sensor's readings, from its input URL (the data server, also through CORS). */
  const history = !job.dataset.historyUrl ? Promise.resolve([]) : fetch(job.dataset.historyUrl, { cache: "no-cache" })
    .then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    })
    .then((doc) => (Array.isArray(doc) ? doc : doc.readings || []))
    .catch((error) => {
      const note = document.getElementById("history-note");
      note.textContent = `The sensor's history could not be loaded (${error.message}).`;
      show("history-note", true);
      return [];
    });

  function schedule() {
    if (stopped) return;
    if (Date.now() - started > GIVE_UP_MS) {
      setStatus("abandoned", "No result after 15 minutes; reload the page to look again.");
      return;
    }
    window.setTimeout(poll, POLL_MS);
  }

  async function poll() {
    let response;
    try {
      // "no-cache": the browser revalidates its copy with If-None-Match on every
      // poll; the results server answers 304 while the document is unchanged.
      response = await fetch(resultUrl, { cache: "no-cache", mode: "cors" });
    } catch (error) {
      statusText.textContent = "The results server cannot be reached; trying again…";
      return schedule();
    }
    if (response.status === 404) {
      // Nothing published yet: the portal knows whether it waits, runs or was cancelled.
      const state = await portalState();
      if (state && state.state === "cancelled") return cancelled();
      if (state && state.state === "running") {
        setStatus("running", "Running; no progress reported yet…");
      } else if (state && state.state === "delayed") {
        setStatus("delayed", "Delayed; it will be queued later…");
      } else {
        setStatus("queued", "Queued; waiting for a worker…");
      }
      return schedule();
    }
    if (!response.ok) {
      statusText.textContent = `The results server answered ${response.status}; trying again…`;
      return schedule();
    }
    const etag = response.headers.get("ETag");
    if (etag !== null && etag === lastEtag) return schedule(); // unchanged since the last poll
    lastEtag = etag;
    const doc = await response.json();
    job.dataset.fetchedFrom = response.url;
    if (doc.status === "running") {
      const fraction = typeof doc.progress === "number" ? doc.progress : 0;
      progress.value = fraction;
      const note = doc.message ? ` — ${doc.message}` : "";
      setStatus("running", `Running on ${doc.worker || "a worker"}: ${Math.round(fraction * 100)} %${note}`);
      return schedule();
    }
    if (doc.status === "done") return done(doc);
    if (doc.status === "failed" && doc.error && doc.error.code === "cancelled") return cancelled();
    if (doc.status === "failed") return failed(doc);
    statusText.textContent = `Unknown status ${JSON.stringify(doc.status)}; trying again…`;
    return schedule();
  }

  async function done(doc) {
    stopped = true;
    if (cancelButton) cancelButton.hidden = true;
    if (job.dataset.view === "simulation") {
      progress.value = 1;
      show("state", false);
      window.SimulationView.show(doc, job.dataset.fetchedFrom);
      show("chart-box", true);
      setStatus("done");
      return;
    }
    const data = doc.data;
    const readings = await history;
    const first = data.forecast.length ? data.forecast[0][0] : Infinity;
    const since = first - HISTORY_DAYS * 86400;
    const recent = readings.filter(([t]) => t >= since && t < first);
    progress.value = 1;
    show("state", false);
    window.ForecastChart.draw(document.getElementById("chart"), {
      history: recent,
      forecast: data.forecast,
      lower: data.lower,
      upper: data.upper,
      unit: data.unit,
      level: data.level,
    });
    const backtest = data.backtest && data.backtest.mape !== null
      ? `; back-test MAPE ${data.backtest.mape.toFixed(2)} % over ${data.backtest.steps} steps`
      : "";
    document.getElementById("summary").textContent =
      `${data.forecast.length} forecast steps with ${data.method.replace(/_/g, " ")}${backtest}. ` +
      `Computed by ${doc.worker || "a worker"}, published ${doc.timestamp}; ` +
      `result document loaded from ${new URL(job.dataset.fetchedFrom).origin}.`;
    show("chart-box", true);
    setStatus("done");
  }

  function failed(doc) {
    stopped = true;
    if (cancelButton) cancelButton.hidden = true;
    const error = doc.error || {};
    document.getElementById("error-code").textContent = error.code || "unknown";
    document.getElementById("error-message").textContent = error.message || "";
    show("state", false);
    show("error", true);
    setStatus("failed");
  }

  poll();
})();
