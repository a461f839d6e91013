#!/usr/bin/env python3
"""bench/auth/run.py -- what SigV4 verification costs drey's API under wrk.

Starts a release drey (SQLite, local directory, no RTMP), creates a flow and an access key,
then, alternating twice, runs wrk for D seconds against GET /flows/{id}:
  * off: unsigned (anonymous read-write, drey's loopback default);
  * on: a presigned URL (botocore SigV4QueryAuth, valid 1 h), every request verified:
    key lookup (cached), canonical request, HMAC chain, constant-time compare.
Prints requests/s of each and on/off.

Usage: bench/auth/run.py [--drey target/release/drey] [--duration 10] [--connections 32]
Needs: wrk, botocore.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, uuid
import urllib.request

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wrk(url, duration, connections):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"wrk saw {non2xx.group(1)} error responses from {url}")
    return rps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drey", default="target/release/drey")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    drey = os.path.abspath(a.drey)
    work = tempfile.mkdtemp(prefix="drey-auth-bench-")
    proc = None
    try:
        data = os.path.join(work, "data")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([drey, "serve", "--data-dir", data, "--http", f"127.0.0.1:{port}",
                                 "--rtmp", "off"], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(work, "drey.log"), "w"))
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/service")
                break
            except OSError:
                time.sleep(0.1)
        flow = str(uuid.uuid4())
        req = urllib.request.Request(
            f"{base}/flows/{flow}", method="PUT",
            data=json.dumps({"id": flow, "source_id": flow, "format": "urn:x-nmos:format:multi",
                             "container": "video/mp2t", "label": "bench"}).encode(),
            headers={"content-type": "application/json"})
        urllib.request.urlopen(req)
        key = json.loads(subprocess.run([drey, "keys", "create", "--grant", "*:read",
                                         "--data-dir", data], capture_output=True, text=True,
                                        check=True).stdout)
        signed = AWSRequest(method="GET", url=f"{base}/flows/{flow}")
        SigV4QueryAuth(Credentials(key["access_key_id"], key["secret_access_key"]), "tams",
                       "us-east-1", expires=3600).add_auth(signed)
        plain = f"{base}/flows/{flow}"
        assert urllib.request.urlopen(signed.url).status == 200
        runs = {"off": [], "on": []}
        for _ in range(2):
            runs["off"].append(wrk(plain, a.duration, a.connections))
            runs["on"].append(wrk(signed.url, a.duration, a.connections))
        best = {k: max(v) for k, v in runs.items()}
        print(json.dumps({"rps": runs, "on_over_off_best": round(best["on"] / best["off"], 3),
                          "cost": round(1 - best["on"] / best["off"], 3)}, indent=2))
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
