#!/usr/bin/env python3
"""What keygate keeps in etcd, measured: bytes per organization, per API key and per audit
event, as live data (keys + values under the prefix) and as etcd's database file after a
compaction and a defragmentation (what --quota-backend-bytes counts). One etcd member and
one node on loopback, state under $WORK.

    perf/etcd_sizing.py [ORGS=1000] [KEYS=10000]    (KEYGATE_BIN: the binary to run)
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORGS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
KEYS = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
BIN = os.environ.get("KEYGATE_BIN", os.path.join(ROOT, "build/bench/keygate"))
WORK = os.path.join(os.environ.get("WORK", "/tmp/keygate-bench"), "etcd-sizing")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, key=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def b64(s):
    return base64.b64encode(s.encode()).decode()


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    client, peer, port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client}"
    procs = [subprocess.Popen(
        ["etcd", "--name", "s", "--data-dir", f"{WORK}/etcd",
         "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"s=http://127.0.0.1:{peer}", "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while True:
            try:
                post(etcd_url + "/v3/maintenance/status", {})
                break
            except OSError:
                time.sleep(0.1)
        log = open(f"{WORK}/node.log", "w")
        procs.append(subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", f"{WORK}/node",
             "--etcd", etcd_url, "--secret-rate", "0", "--threads", "1"],
            stdout=log, stderr=log))
        while '"event":"ready"' not in open(f"{WORK}/node.log").read():
            time.sleep(0.1)
        root = open(f"{WORK}/node/root.key").read().strip()
        api = f"http://127.0.0.1:{port}"

        def measure():
            """Live bytes by kind (the path segment after the prefix), and the database."""
            kvs = post(etcd_url + "/v3/kv/range",
                       {"key": b64("/keygate/"), "range_end": b64("/keygate0")}).get("kvs", [])
            live = {}
            for kv in kvs:
                k = base64.b64decode(kv["key"])  # bytes: a hash index key ends in raw bytes
                kind = k.split(b"/")[2].decode()
                n = len(k) + len(base64.b64decode(kv.get("value", "")))
                live[kind] = live.get(kind, 0) + n
            status = post(etcd_url + "/v3/maintenance/status", {})
            post(etcd_url + "/v3/kv/compaction",
                 {"revision": status["header"]["revision"], "physical": True})
            post(etcd_url + "/v3/maintenance/defragment", {})
            db = int(post(etcd_url + "/v3/maintenance/status", {})["dbSize"])
            return live, db, len(kvs)

        base_live, base_db, _ = measure()
        with ThreadPoolExecutor(16) as pool:
            orgs = list(pool.map(
                lambda i: post(api + "/v1/organizations", {"name": f"sizing {i}"}, root),
                range(ORGS)))
        org_live, org_db, _ = measure()
        tenant = orgs[0]["data"]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(
                lambda i: post(api + f"/v1/organizations/{tenant['id']}/api-keys",
                               {"name": f"k{i}"}, tenant["api_key"]["revealed_key"]),
                range(KEYS)))
        key_live, key_db, _ = measure()

        def delta(after, before, kinds=None):
            return sum(v for k, v in after.items() if kinds is None or k in kinds) - \
                sum(v for k, v in before.items() if kinds is None or k in kinds)

        per_org = delta(org_live, base_live) / ORGS
        per_key = delta(key_live, org_live, {"key", "hash"}) / KEYS
        # Each key creation records one event; an organization's creation records two.
        per_event = delta(key_live, org_live, {"audit"}) / KEYS
        print(f"etcd {subprocess.run(['etcd', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
        print(f"| what | live bytes (keys + values) | database bytes (compacted, defragmented) |")
        print(f"|---|---|---|")
        print(f"| an organization, with its first key and 2 audit events ({ORGS}) | {per_org:.0f} | {(org_db - base_db) / ORGS:.0f} |")
        print(f"| an API key: its record under its hash ({KEYS} in one organization) | {per_key:.0f} | - |")
        print(f"| an audit event | {per_event:.0f} | - |")
        print(f"| a key created (its record, its event, the version bump) | {delta(key_live, org_live) / KEYS:.0f} | {(key_db - org_db) / KEYS:.0f} |")
        print("live bytes by kind at the end:", json.dumps(key_live, sort_keys=True))
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
