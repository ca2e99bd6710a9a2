"""Varnish in front of three worker nodes (examples/varnish/jobrunner.vcl), for real.

Three nodes — worker, ``jobrunner serve``, rsync daemon each, results replicated
by the rsync publisher — and one ``varnishd`` on loopback with the example VCL
pointed at the nodes' results servers (its own working directory, never the
system Varnish). Browsers are played by HTTP clients reading through Varnish.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from jobrunner import Client
from tests.support import (
    Beanstalkd,
    Node,
    ResultsServer,
    Varnish,
    require_binary,
    varnish_vcl,
    wait_for,
    write_test_jobs,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

BASE = "http://results.test/"  # the result URLs' base: Varnish's address for browsers
PORTAL = "https://portal.example.org"
OTHER_PORTAL = "https://maps.example.org"


@attrs.define
class Cluster:
    """Three nodes behind Varnish, and a client submitting to their beanstalkd."""

    nodes: list[Node]
    varnish: Varnish
    client: Client
    input_url: str

    def submit(self, name: str, seconds: float, tube: str = "common") -> str:
        """Submit a ``test_sleep`` job whose result is ``NAME.json``; return the name."""
        self.client.submit(
            "test_sleep",
            self.input_url,
            f"{BASE}{name}.json",
            {"seconds": seconds},
            tube=tube,
            id=name,
        )
        return name

    def done_somewhere(self, name: str) -> bool:
        """Whether a live node has the document as done (read from its results directory,
        which its results server serves as it is)."""
        for node in self.nodes:
            if node.serve.process.proc.poll() is None:
                try:
                    if json.loads((node.results / f"{name}.json").read_bytes())["status"] == "done":
                        return True
                except FileNotFoundError:
                    pass
        return False

    def done_everywhere(self, name: str) -> bytes | None:
        """The document's bytes once every live node serves it as done, else None."""
        bodies = set()
        for node in self.nodes:
            if node.serve.process.proc.poll() is not None:
                continue
            response = node.get(f"{name}.json")
            if response.status_code != 200 or response.json()["status"] != "done":
                return None
            bodies.add(response.content)
        return bodies.pop() if len(bodies) == 1 else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes with workers, rsync replication and results servers, Varnish in front."""
    require_binary("rsync")
    root = tmp_path_factory.mktemp("varnish-cluster")
    jobs = write_test_jobs(root / "testjobs")
    inputs = root / "inputs"
    inputs.mkdir()
    (inputs / "in.json").write_text('{"x": 1}')
    queue = Beanstalkd().start()
    nodes: list[Node] = []
    varnish = None
    client = None
    try:
        for index in (1, 2, 3):
            nodes.append(
                Node(root, f"node{index}", "--cors-origin", PORTAL, "--cors-origin", OTHER_PORTAL)
            )
        for node in nodes:
            peers = [p for p in nodes if p is not node]
            node.start_worker([queue.address], peers, jobs, inputs, BASE, concurrency=1)
        varnish = Varnish(root / "varnish", varnish_vcl([n.serve.port for n in nodes]))
        client = Client([queue.address])
        yield Cluster(nodes, varnish, client, (inputs / "in.json").as_uri())
    finally:
        if client is not None:
            client.close()
        if varnish is not None:
            varnish.stop()
        for node in nodes:
            node.stop()
        queue.stop()


def settled_counters(varnish: Varnish, at_least: dict[str, int]) -> dict[str, int]:
    """Varnish's counters once they have caught up with ``at_least`` (threads flush late)."""
    return wait_for(
        lambda: (
            (c := varnish.counters()) and all(c.get(k, 0) >= v for k, v in at_least.items()) and c
        ),
        timeout=10,
        what=f"varnishstat counters {at_least}",
    )


def test_finished_document_read_1000_times_reaches_a_backend_once(cluster: Cluster) -> None:
    """A done document read 1,000 times through Varnish is fetched from the nodes at most
    a few times (once here: its lifetime is a day), and every read gets its bytes."""
    name = cluster.submit("popular", 0.1)
    body = wait_for(lambda: cluster.done_everywhere(name), timeout=60, what="popular done")
    with httpx.Client(base_url=cluster.varnish.base_url, timeout=10) as browser:
        assert browser.request("PURGE", f"/{name}.json").status_code == 200
        before = cluster.varnish.counters()
        answers = [browser.get(f"/{name}.json") for _ in range(1000)]
    assert {(a.status_code, a.content) for a in answers} == {(200, body)}
    after = settled_counters(cluster.varnish, {"MAIN.client_req": before["MAIN.client_req"] + 1000})
    fetched = after["MAIN.backend_req"] - before["MAIN.backend_req"]
    assert 1 <= fetched <= 3, fetched
    assert sum(a.headers["x-cache"] == "HIT" for a in answers) >= 997


def test_running_to_done_visible_within_a_second(cluster: Cluster) -> None:
    """While a job runs Varnish serves its running document; once a node has the done
    document, Varnish serves it within about a second (a running document lives 1 s)."""
    name = cluster.submit("progress", 3.0)
    node_done_at = varnish_done_at = None
    seen: list[tuple[str, int, str]] = []
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=cluster.varnish.base_url, timeout=10) as browser:
        while varnish_done_at is None and time.monotonic() < deadline:
            if node_done_at is None and cluster.done_somewhere(name):
                node_done_at = time.monotonic()
            answer = browser.get(f"/{name}.json")
            if answer.status_code == 200:
                status = answer.json()["status"]
                seen.append((status, int(answer.headers["age"]), answer.headers["x-cache"]))
                if status == "done":
                    varnish_done_at = time.monotonic()
            time.sleep(0.02)
    assert varnish_done_at is not None, f"never done through Varnish: {seen[-5:]}"
    running = [(age, cache) for status, age, cache in seen if status == "running"]
    assert running, "the running document was never served through Varnish"
    assert max(age for age, _ in running) <= 1  # never older than its one-second lifetime
    assert "HIT" in {cache for _, cache in running}, "running documents were never cached"
    # The node's done document and Varnish's can show in the same round (lag 0).
    lag = varnish_done_at - (node_done_at or varnish_done_at)
    assert lag < 2.0, f"done showed through Varnish {lag:.2f} s after a node had it"


def test_cors_passes_through_per_origin(cluster: Cluster) -> None:
    """Each allowed origin gets its own Access-Control-Allow-Origin from the cache, whatever
    was cached first (a read without Origin, another origin's); other origins get none;
    preflights reach the nodes."""
    name = cluster.submit("shared", 0.1)
    wait_for(lambda: cluster.done_everywhere(name), timeout=60, what="shared done")
    url = f"{cluster.varnish.base_url}/{name}.json"
    evil = "https://evil.example.com"
    for origin in (None, PORTAL, evil, OTHER_PORTAL, None, PORTAL, evil, OTHER_PORTAL):
        headers = {"Origin": origin} if origin else {}
        answer = httpx.get(url, headers=headers, timeout=10)
        assert answer.status_code == 200
        assert "Origin" in answer.headers["vary"]
        if origin in (PORTAL, OTHER_PORTAL):
            assert answer.headers["access-control-allow-origin"] == origin
            assert answer.headers["access-control-expose-headers"] == "ETag, Last-Modified"
        else:
            assert "access-control-allow-origin" not in answer.headers, origin
    assert answer.headers["x-cache"] == "HIT"
    preflight = httpx.options(
        url,
        headers={
            "Origin": PORTAL,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
        timeout=10,
    )
    assert preflight.status_code in (200, 204)  # Starlette answers 200, nginx 204
    assert preflight.headers["access-control-allow-origin"] == PORTAL
    assert "if-none-match" in preflight.headers["access-control-allow-headers"].lower()


class Browsers(threading.Thread):
    """Polls result URLs through Varnish, as the portal's pages do, recording every answer."""

    def __init__(self, base_url: str, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.names = names
        self.answers: dict[str, list[tuple[int, str | None]]] = {n: [] for n in names}
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as browser:
            while not self.stopping.is_set():
                for name in self.names:
                    answer = browser.get(f"/{name}.json")
                    status = answer.json().get("status") if answer.status_code == 200 else None
                    self.answers[name].append((answer.status_code, status))
                time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def test_node_killed_mid_run_every_result_stays_readable(cluster: Cluster) -> None:
    """A node killed (worker, results server and rsync daemon, SIGKILL) while it runs a job:
    Varnish marks it sick and skips it, no read fails, every result — those the dead node
    finished too — is served done, and none that was done goes back."""
    victim = cluster.nodes[2]
    names = [cluster.submit(f"batch-{k}", 1.0) for k in range(12)]
    browsers = Browsers(cluster.varnish.base_url, names)
    browsers.start()
    try:

        def victim_docs() -> dict[str, dict[str, object]]:
            return {p.stem: json.loads(p.read_bytes()) for p in victim.results.glob("batch-*.json")}

        def victim_mid_job() -> bool:
            mine = [d["status"] for d in victim_docs().values() if d["worker"] == victim.name]
            return "done" in mine and "running" in mine

        wait_for(victim_mid_job, timeout=60, interval=0.05, what="the victim node mid-job")
        finished_by_victim = [
            name
            for name, doc in victim_docs().items()
            if doc["worker"] == victim.name and doc["status"] == "done"
        ]
        assert victim.worker is not None
        victim.worker.signal(signal.SIGKILL)
        victim.serve.process.signal(signal.SIGKILL)
        victim.rsyncd.proc.kill()
        victim.worker.wait(timeout=10)
        victim.serve.process.wait(timeout=10)

        wait_for(
            lambda: cluster.varnish.backend_health().get("node3") == "sick",
            timeout=15,
            what="Varnish marking the dead node sick",
        )

        def all_done_through_varnish() -> bool:
            return all(
                answers and answers[-1] == (200, "done") for answers in browsers.answers.values()
            )

        wait_for(all_done_through_varnish, timeout=90, interval=0.1, what="every result done")
    finally:
        browsers.stop()
    assert finished_by_victim, "the victim node finished nothing before it died"
    for name, answers in browsers.answers.items():
        codes = {code for code, _ in answers}
        assert codes <= {200, 404}, f"{name}: answers {sorted(codes)} through Varnish"
        statuses = [status for _, status in answers]
        first_done = statuses.index("done")
        assert set(statuses[first_done:]) == {"done"}, f"{name} went back from done"
    with httpx.Client(base_url=cluster.varnish.base_url, timeout=10) as browser:
        for name in names:
            answer = browser.get(f"/{name}.json")
            assert answer.status_code == 200 and answer.json()["status"] == "done", name
        workers = {browser.get(f"/{n}.json").json()["worker"] for n in finished_by_victim}
    assert workers == {victim.name}


def test_missing_on_one_node_found_and_cache_busters_ignored(tmp_path: Path) -> None:
    """A document one node lacks (it was down when it was published) is still served; a
    document no node has costs two node requests, then a cached 404; query strings
    cannot bypass the cache; methods other than reads are refused by Varnish."""
    done = b'{"v":1,"id":"d","type":"t","status":"done","timestamp":"2026-01-01T00:00:00Z"}'
    servers = []
    varnish = None
    try:
        for index in range(3):
            results = tmp_path / f"node{index}"
            results.mkdir()
            for k in range(12):
                if k % 3 != index:  # document k is missing on node k % 3
                    (results / f"doc-{k}.json").write_bytes(done)
            servers.append(ResultsServer(results))
        varnish = Varnish(tmp_path / "varnish", varnish_vcl([s.port for s in servers]))
        with httpx.Client(base_url=varnish.base_url, timeout=10) as browser:
            for k in range(12):
                answer = browser.get(f"/doc-{k}.json")
                assert (answer.status_code, answer.content) == (200, done), k

            before = varnish.counters()
            for _ in range(5):
                answer = browser.get("/nowhere.json")
                assert answer.status_code == 404
                assert answer.headers["cache-control"] == "public, max-age=2"
            after = settled_counters(varnish, {"MAIN.client_req": before["MAIN.client_req"] + 5})
            assert after["MAIN.backend_req"] - before["MAIN.backend_req"] == 2

            before = after
            for attempt in range(50):
                answer = browser.get(f"/doc-0.json?nocache={attempt}&t={time.time()}")
                assert (answer.status_code, answer.headers["x-cache"]) == (200, "HIT")
            after = settled_counters(varnish, {"MAIN.client_req": before["MAIN.client_req"] + 50})
            assert after["MAIN.backend_req"] == before["MAIN.backend_req"]

            for method in ("PUT", "DELETE", "POST", "PATCH", "BAN"):
                answer = browser.request(method, "/doc-0.json", content=b"{}")
                assert answer.status_code == 405, method
                assert answer.json() == {"error": "Method not allowed"}
            assert browser.get("/doc-0.json").content == done
    finally:
        if varnish is not None:
            varnish.stop()
        for server in servers:
            server.stop()


def test_grace_serves_finished_documents_while_every_node_is_down(tmp_path: Path) -> None:
    """Once its lifetime is over, a cached done document is still served while no node can
    answer (grace); a running document and an uncached one are not (503)."""
    done = b'{"v":1,"id":"d","type":"t","status":"done","timestamp":"2026-01-01T00:00:00Z"}'
    running = done.replace(b'"done"', b'"running"')
    servers = []
    varnish = None
    try:
        for index in (1, 2):
            results = tmp_path / f"node{index}"
            results.mkdir()
            (results / "done.json").write_bytes(done)
            (results / "running.json").write_bytes(running)
            servers.append(ResultsServer(results, "--cache-finished", "3"))
        varnish = Varnish(tmp_path / "varnish", varnish_vcl([s.port for s in servers]))
        with httpx.Client(base_url=varnish.base_url, timeout=10) as browser:
            assert browser.get("/health").status_code == 200
            first = browser.get("/done.json")
            assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
            assert "stale-if-error=3" in first.headers["cache-control"]
            fetched_at = time.monotonic()
            assert browser.get("/running.json").status_code == 200
            for server in servers:
                server.stop()
            wait_for(
                lambda: set(varnish.backend_health().values()) == {"sick"},
                timeout=15,
                what="both nodes sick",
            )
            time.sleep(max(0.0, fetched_at + 3.5 - time.monotonic()))  # lifetime over
            stale = browser.get("/done.json")
            assert stale.status_code == 200
            assert stale.content == done
            assert int(stale.headers["age"]) >= 3
            for path in ("/running.json", "/never-published.json"):
                answer = browser.get(path)
                assert answer.status_code == 503, path
                assert answer.json() == {"error": "no results server answered"}
            health = browser.get("/health")
            assert health.status_code == 503 and health.json() == {"status": "unhealthy"}
    finally:
        if varnish is not None:
            varnish.stop()
        for server in servers:
            server.stop()
