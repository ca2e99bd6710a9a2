"""Three worker nodes on one machine: two beanstalkd servers, a common tube plus one tube
per node, results replicated with rsync, a load balancer in front — one node and one
beanstalkd stopped mid-run, and still every job done and readable everywhere."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from jobrunner import Client
from tests.support import (
    Beanstalkd,
    Node,
    free_port,
    require_binary,
    wait_for,
    wait_for_port,
    write_test_jobs,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

BASE = "http://results.test/r/"  # what browsers use: the load balancer's URL
ROOT = Path(__file__).resolve().parents[2]


def load_balancer(tmp_path: Path, nodes: list[Node]) -> tuple[subprocess.Popen[bytes], int]:
    """nginx with examples/nginx/loadbalancer.conf, pointed at the nodes' results servers."""
    nginx = require_binary("nginx")
    port = free_port()
    server_block = (ROOT / "examples" / "nginx" / "loadbalancer.conf").read_text()
    lines = [f"    server 127.0.0.1:{n.serve.port} max_fails=2 fail_timeout=10s;" for n in nodes]
    server_block = re.sub(r"(?m)^\s*server node\d\.internal:8080.*$\n?", "", server_block)
    server_block = server_block.replace(
        "upstream jobrunner_results {", "upstream jobrunner_results {\n" + "\n".join(lines)
    )
    server_block = server_block.replace("listen 80;", f"listen 127.0.0.1:{port};")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\nerror_log {prefix}/error.log;\npid {prefix}/nginx.pid;\n"
        + "events { worker_connections 64; }\n"
        + f"http {{\n    access_log off;\n{temp}\n{server_block}\n}}\n"
    )
    check = subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    )
    wait_for_port(port)
    return proc, port


def test_three_nodes_two_queues_one_node_and_one_queue_lost(tmp_path: Path) -> None:
    """Every job is done and its result readable, with the same bytes, from every surviving
    node and through the load balancer, though a node and a beanstalkd stop mid-run."""
    require_binary("rsync")
    jobs = write_test_jobs(tmp_path / "testjobs")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "in.json").write_text('{"x": 1}')
    input_url = (inputs / "in.json").as_uri()
    queues = [Beanstalkd(binlog_dir=tmp_path / f"binlog-{n}").start() for n in "ab"]
    servers = [q.address for q in queues]
    nodes = [Node(tmp_path, f"node{i}") for i in (1, 2, 3)]
    lb = None
    try:
        for node in nodes:
            node.start_worker(servers, [p for p in nodes if p is not node], jobs, inputs, BASE)
        client = Client(servers)

        def submit(name: str, tube: str, seconds: float) -> str:
            client.submit(
                "test_sleep",
                input_url,
                f"{BASE}{name}.json",
                {"seconds": seconds},
                tube=tube,
                id=name,
            )
            return name

        # Each node's own tube: only that node runs those jobs.
        own = {
            node.name: [submit(f"{node.name}-own-{k}", node.name, 0.05) for k in range(2)]
            for node in nodes
        }
        for node in nodes:
            for name in own[node.name]:
                wait_for(
                    lambda n=node, j=name: (
                        n.get(f"{j}.json").status_code == 200
                        and n.get(f"{j}.json").json()["worker"] == n.name
                    ),
                    timeout=60,
                    what=f"{name} on {node.name}",
                )

        names = [submit(f"common-{k}", "common", 0.5) for k in range(40)]
        # Mid-run: kill beanstalkd b, which comes back on its binlog later, and stop
        # node 3 (SIGTERM: its running jobs finish or go back to the queue).
        wait_for(
            lambda: any((nodes[0].results / f"{n}.json").exists() for n in names),
            timeout=60,
            what="the run under way",
        )
        held = queues[1].tube_stats("common")
        assert held.get("current-jobs-ready", 0) + held.get("current-jobs-reserved", 0) > 0
        queues[1].stop(sig=signal.SIGKILL)
        nodes[2].stop()
        names += [submit(f"during-{k}", "common", 0.1) for k in range(10)]  # fail over to a
        time.sleep(2)
        queues[1].start()

        survivors = nodes[:2]

        def replicated(name: str) -> bool:
            bodies = set()
            for node in survivors:
                response = node.get(f"{name}.json")
                if response.status_code != 200 or response.json()["status"] != "done":
                    return False
                bodies.add(response.content)
            return len(bodies) == 1

        for name in names:
            wait_for(
                lambda n=name: replicated(n),
                timeout=90,
                interval=0.1,
                what=f"{name} done and the same on every surviving node",
            )
        # One result per job, and beanstalkd b's jobs were not lost with it.
        workers = {nodes[0].get(f"{n}.json").json()["worker"] for n in names}
        assert workers <= {"node1", "node2", "node3"}
        assert len(workers) >= 2
        for queue in queues:
            stats = queue.tube_stats("common")
            assert stats.get("current-jobs-ready", 0) == 0
            assert stats.get("current-jobs-buried", 0) == 0

        # Browsers read through the load balancer; the dead node is skipped.
        lb, lb_port = load_balancer(tmp_path, nodes)
        for name in names:
            response = httpx.get(f"http://127.0.0.1:{lb_port}/r/{name}.json", timeout=10)
            assert response.status_code == 200, name
            assert response.json()["status"] == "done"
        client.close()
    finally:
        if lb is not None:
            lb.terminate()
            lb.wait(timeout=10)
        for node in nodes:
            node.stop()
        for queue in queues:
            queue.stop()
        shutil.rmtree(tmp_path / "nginx", ignore_errors=True)
