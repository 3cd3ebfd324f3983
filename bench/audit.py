#!/usr/bin/env python3
"""Adds the API server's view of one jobflow-load run to its JSON report: every request of the
run's window from the audit log (Metadata level, every verb), attributed per client.

Usage: audit.py REPORT.json AUDIT.log START_BYTE END_BYTE

Reads AUDIT.log from START_BYTE to END_BYTE (compare.sh records the log's size before and after
the run), keeps the requests received between the report's setup.started_unix and
setup.ended_unix, counts each request once (its first stage: a watch's ResponseStarted, every
other request's ResponseComplete), and writes under "audit" in REPORT.json:

- clients: per (user, user agent's program): writes, reads, and per step (flows x steps);
- rows: per client, verb and resource[/subresource]: count and per step;
- engine: the engine's own clients summed (users zen-flow-agent-* or argo-workflow-controller):
  writes and reads per step, Events included and apart;
- write_namespaces: per user, the namespaces it wrote in (the sharding proof: each agent shard
  writes only in its own);
- outside_run_writes: per user, writes in the window to namespaces that are not the run's
  (e.g. Argo at 20 QPS still sending an earlier run's Events): left out of every other figure.
"""

import collections
import datetime
import json
import sys

WRITES = {"create", "update", "patch", "delete", "deletecollection", "apply"}
READS = {"get", "list", "watch"}


def unix(stamp):
    """An RFC 3339 timestamp (microseconds, Z) as Unix seconds."""
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def program(user_agent):
    """The program part of a user agent: kube-controller-manager/v1.35.4 (...) -> kube-controller-manager."""
    return (user_agent or "?").split("/")[0].split(" ")[0]


def is_engine(user, engine):
    """Whether `user` is the engine under test's own client."""
    if engine == "argo":
        return user == "argo-workflow-controller"
    return user.startswith("zen-flow-agent")


def main():
    report_path, log_path, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(report_path) as f:
        report = json.load(f)
    setup = report["setup"]
    t0, t1 = setup["started_unix"], setup["ended_unix"]
    steps = max(1, setup["flows"] * setup["steps"])
    engine = setup["engine"]
    seen = set()
    rows = collections.Counter()
    namespaces = collections.defaultdict(set)
    run_namespaces = set(setup.get("namespaces") or [])
    outside = collections.Counter()
    with open(log_path, "rb") as f:
        f.seek(start)
        data = f.read(max(0, end - start))
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("auditID") in seen:
            continue
        seen.add(event.get("auditID"))
        received = unix(event["requestReceivedTimestamp"])
        if not t0 <= received <= t1:
            continue
        user = event.get("user", {}).get("username", "?")
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", event.get("requestURI", "?").split("?")[0])
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        verb = event.get("verb", "?")
        if verb in WRITES and ref.get("namespace"):
            namespaces[user].add(ref["namespace"])
            if run_namespaces and ref["namespace"] not in run_namespaces and ref["namespace"] not in (
                    "kube-system", "kube-node-lease", "default", "argo"):
                outside[user] += 1
                continue
        rows[(user, program(event.get("userAgent")), verb, resource)] += 1
    clients = collections.defaultdict(lambda: {"writes": 0, "reads": 0})
    engine_sum = {"writes": 0, "reads": 0, "event_writes": 0, "writes_by_resource": collections.Counter()}
    for (user, agent, verb, resource), count in rows.items():
        kind = "writes" if verb in WRITES else "reads" if verb in READS else "other"
        client = clients[f"{user} | {agent}"]
        client[kind] = client.get(kind, 0) + count
        if is_engine(user, engine):
            engine_sum[kind] = engine_sum.get(kind, 0) + count
            if kind == "writes":
                engine_sum["writes_by_resource"][f"{verb} {resource}"] += count
                if resource == "events":
                    engine_sum["event_writes"] += count
    for client in clients.values():
        client["writes_per_step"] = client["writes"] / steps
        client["reads_per_step"] = client["reads"] / steps
    all_writes = sum(c["writes"] for c in clients.values())
    report["audit"] = {
        "window_unix": [t0, t1],
        "requests": sum(rows.values()),
        "steps": steps,
        "clients": dict(sorted(clients.items())),
        "rows": [
            {"user": u, "agent": a, "verb": v, "resource": r, "count": n, "per_step": n / steps}
            for (u, a, v, r), n in sorted(rows.items())
        ],
        "engine": {
            "writes": engine_sum["writes"],
            "reads": engine_sum["reads"],
            "event_writes": engine_sum["event_writes"],
            "writes_per_step": engine_sum["writes"] / steps,
            "writes_per_step_without_events": (engine_sum["writes"] - engine_sum["event_writes"]) / steps,
            "event_writes_per_step": engine_sum["event_writes"] / steps,
            "reads_per_step": engine_sum["reads"] / steps,
            "writes_by_resource_per_step": {
                k: n / steps for k, n in sorted(engine_sum["writes_by_resource"].items())
            },
        },
        "all_clients_writes_per_step": all_writes / steps,
        "write_namespaces": {u: sorted(ns) for u, ns in sorted(namespaces.items())},
        "outside_run_writes": dict(sorted(outside.items())),
    }
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
