vcl 4.1;
# Varnish in front of several workers' results servers (`jobrunner serve`).
#
# Results are replicated between the workers by the rsync publisher, so any
# node can answer for any result. Browsers load and poll
# https://results.example.org/r/... from this cache; the nodes say how long
# an answer may be kept (Cache-Control: a finished document a day, a running
# one a second, a 404 two seconds) and Varnish keeps it that long, so almost
# every poll is answered here and never reaches a worker.
#
#   - health probes on /health take a dead node out within ~3 s;
#   - a read is retried on the next node when a node refuses the connection
#     or fails, and on one more node when it has not got the document (404);
#   - a finished document whose lifetime ran out is still served while every
#     node is down or none has it any more (grace);
#   - CORS headers of the nodes are passed through and cached per Origin
#     (the nodes send Vary: Origin);
#   - query strings are dropped: `?nocache=123` cannot bypass the cache;
#   - PURGE from the purgers ACL drops a document (after `jobrunner kick`
#     re-ran a failed job, say).
#
# Edit the marked values (the backends, the director's list, the purgers),
# then see README.rst next to this file.

import std;
import directors;

# --- the workers' results servers -----------------------------------------
probe jobrunner_health {
    .url = "/health";          # `jobrunner serve` answers 200, or 503 when its
    .expected_response = 200;  # results directory cannot be read
    .interval = 1s;
    .timeout = 1s;
    .window = 3;               # healthy while 2 of the last 3 probes passed
    .threshold = 2;
    .initial = 2;              # a fresh Varnish trusts the nodes at once
}

backend node1 {
    .host = "node1.internal";  # EDIT: your nodes and their `jobrunner serve` ports
    .port = "8080";
    .probe = jobrunner_health;
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 10s;
}

backend node2 {
    .host = "node2.internal";
    .port = "8080";
    .probe = jobrunner_health;
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 10s;
}

backend node3 {
    .host = "node3.internal";
    .port = "8080";
    .probe = jobrunner_health;
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 10s;
}

# Who may PURGE a document.
acl purgers {
    "localhost";
    "127.0.0.1";
    "::1";                     # EDIT: add the hosts that run `jobrunner kick`
}

sub vcl_init {
    # A shard director: each document has its own order of nodes (consistent
    # hashing of the URL), unhealthy nodes are skipped, and a retry asks the
    # next node in that order.
    new results = directors.shard();
    results.add_backend(node1);   # EDIT: one line per backend above
    results.add_backend(node2);
    results.add_backend(node3);
    results.reconfigure();
}

# --- requests -----------------------------------------------------------------
sub vcl_recv {
    # The director itself (resolved per fetch below); healthy while any node is.
    set req.backend_hint = results.backend(resolve=LAZY);

    # This cache's own health, for a load balancer or monitor in front:
    # 200 while at least one node is healthy.
    if (req.url == "/health" || req.url ~ "^/health\?") {
        if (std.healthy(req.backend_hint)) {
            return (synth(200, "OK"));
        }
        return (synth(503, "No healthy results server"));
    }

    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "Not allowed"));
        }
        set req.url = regsub(req.url, "\?.*$", "");
        return (purge);
    }
    # Reads only. PUT (the http publisher) goes to a node directly.
    if (req.method == "OPTIONS") {
        return (pass);             # CORS preflights: answered by the nodes
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (synth(405, "Method not allowed"));
    }

    # A result document is the same for everybody: no query string (the
    # nodes ignore it; cache busters would make every poll a miss), no
    # cookies, no credentials.
    set req.url = regsub(req.url, "\?.*$", "");
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_hash {
    # All nodes serve one namespace: the URL alone is the key, whatever
    # host name the browser used.
    hash_data(req.url);
    return (lookup);
}

# --- fetching from the nodes ------------------------------------------------
sub vcl_backend_fetch {
    # The first try asks the document's own node, each retry the next one;
    # unhealthy nodes are skipped.
    set bereq.backend = results.backend(by=URL, alt=bereq.retries, healthy=ALL);
}

sub vcl_backend_response {
    # The node is failing: ask the next one, up to every node once.
    if (beresp.status >= 500 && bereq.retries < 2) {  # EDIT: nodes - 1
        return (retry);
    }
    # Not found: ask one more node, which has the document if this node was
    # down when it was published, or rsync is still copying it. (Asking every
    # node would cost each polled, still queued job one request per node.)
    # The 404 is remembered, with the node's CORS answer, so that a dead node
    # asked next does not turn it into a 503.
    if (beresp.status == 404 && !bereq.http.X-Jobrunner-Not-Found
        && bereq.retries < 2) {  # EDIT: nodes - 1
        set bereq.http.X-Jobrunner-Not-Found = "1";
        set bereq.http.X-Jobrunner-Allow-Origin = beresp.http.Access-Control-Allow-Origin;
        return (retry);
    }
    # Refreshing a document still held in grace: keep serving the cached copy
    # rather than an error or a 404 from a node that lacks it.
    if (bereq.is_bgfetch && (beresp.status == 404 || beresp.status >= 500)) {
        return (abandon);
    }
    if (beresp.http.Cache-Control ~ "stale-while-revalidate") {
        # A finished document: Varnish took its grace from the node's
        # stale-while-revalidate (as long as its lifetime). When the lifetime
        # runs out it is served for that long again while Varnish refreshes
        # it in the background, or while no node can answer; then it is kept
        # one more day for a cheap revalidation (If-None-Match → 304).
        set beresp.keep = 1d;
    } else {
        # A running document or a 404: only while fresh, so that a finished
        # document shows within a second.
        set beresp.grace = 0s;
    }
    # Then Varnish's built-in rules: no-cache, no-store and private answers
    # (files other than result documents, errors) are passed on, not kept.
}

sub vcl_backend_error {
    # Connection refused or timed out: try the next node.
    if (bereq.retries < 2) {       # EDIT: nodes - 1
        return (retry);
    }
    # No node answered a refresh: keep the copy in grace.
    if (bereq.is_bgfetch) {
        return (abandon);
    }
    set beresp.http.Content-Type = "application/json";
    set beresp.http.Cache-Control = "no-store";
    set beresp.ttl = 0s;
    if (bereq.http.X-Jobrunner-Not-Found) {
        # A node said 404 before the last one failed: not published yet.
        set beresp.status = 404;
        set beresp.reason = "Not Found";
        if (bereq.http.X-Jobrunner-Allow-Origin ~ ".") {
            set beresp.http.Access-Control-Allow-Origin = bereq.http.X-Jobrunner-Allow-Origin;
            set beresp.http.Vary = "Origin";
        }
        set beresp.body = {"{"error": "not found""} + "}";
        return (deliver);
    }
    set beresp.body = {"{"error": "no results server answered""} + "}";
    return (deliver);
}

# --- answers ------------------------------------------------------------------
sub vcl_deliver {
    # Whether this answer came from the cache (HIT) or a node (MISS).
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}

sub vcl_synth {
    # Errors of this cache as small JSON documents, like the nodes' errors.
    set resp.http.Content-Type = "application/json";
    set resp.http.Cache-Control = "no-store";
    if (resp.status == 405) {
        set resp.http.Allow = "GET, HEAD, OPTIONS";
    }
    if (resp.status == 200) {
        set resp.body = {"{"status": "ok""} + "}";
    } elsif (req.url ~ "^/health") {
        set resp.body = {"{"status": "unhealthy""} + "}";
    } else {
        set resp.body = {"{"error": ""} + resp.reason + {"""} + "}";
    }
    return (deliver);
}
