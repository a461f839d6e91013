#!/usr/bin/env python3
"""A TAMS client written from the 8.2 spec alone, the way a new user would: it reads
/service, creates a flow, allocates storage, uploads objects to the returned put URLs,
registers segments, lists them by timerange, reads them back, deletes a range and the
flow. It knows nothing of drey beyond the spec. Exits non-zero on the first surprise.

    python3 scripts/spec_client.py http://127.0.0.1:8080 [--seed FILE]

With --seed it leaves a flow with segments behind and writes its ids to FILE (as env
lines) for the schemathesis pass that needs existing resources.
"""
import argparse
import json
import sys
import time
import uuid

import requests

passed = 0


def check(cond, what, detail=""):
    global passed
    if not cond:
        print(f"FAIL: {what} {detail}", file=sys.stderr)
        print(f"spec-client: {passed} passed, 1 failed")
        sys.exit(1)
    passed += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--seed")
    a = ap.parse_args()
    base = a.base.rstrip("/")
    s = requests.Session()

    svc = s.get(f"{base}/service").json()
    check(svc["api_version"].startswith("8."), "service api_version", svc)
    timeout_s = int(svc["min_object_timeout"].split(":")[0])
    check(timeout_s >= 300, "min_object_timeout >= 300 s")
    backends = s.get(f"{base}/service/storage-backends").json()
    check(backends and backends[0]["store_type"] == "http_object_store", "a storage backend", backends)

    flow_id, source_id = str(uuid.uuid4()), str(uuid.uuid4())
    flow = {
        "id": flow_id, "source_id": source_id, "format": "urn:x-nmos:format:video",
        "codec": "video/h264", "container": "video/mp2t", "label": "spec-client",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080,
                               "frame_rate": {"numerator": 25, "denominator": 1}},
        "tags": {"made_by": "spec_client"},
    }
    r = s.put(f"{base}/flows/{flow_id}", json=flow)
    check(r.status_code == 201, "PUT flow -> 201", r.text)
    check(r.json()["id"] == flow_id, "created flow echoed")

    r = s.post(f"{base}/flows/{flow_id}/storage", json={"limit": 6})
    check(r.status_code == 201, "allocate storage -> 201", r.text)
    objs = r.json()["media_objects"]
    check(len(objs) == 6, "six allocations")
    payloads = {}
    for i, m in enumerate(objs):
        body = (f"object {i} ".encode() * 1000)
        headers = {}
        if m["put_url"].get("content-type"):
            headers["Content-Type"] = m["put_url"]["content-type"]
        r = requests.put(m["put_url"]["url"], data=body, headers=headers)
        check(200 <= r.status_code < 300, f"upload to put_url {i}", r.status_code)
        payloads[m["object_id"]] = body

    segments = [{"object_id": m["object_id"], "timerange": f"[{2 * i}:0_{2 * i + 2}:0)", "key_frame_count": 1}
                for i, m in enumerate(objs)]
    r = s.post(f"{base}/flows/{flow_id}/segments", json=segments)
    check(r.status_code == 201, "register segments -> 201", r.text)
    r = s.post(f"{base}/flows/{flow_id}/segments", json={"object_id": objs[0]["object_id"], "timerange": "[1:0_3:0)"})
    check(r.status_code == 400, "overlapping segment -> 400", r.status_code)

    r = s.get(f"{base}/flows/{flow_id}/segments", params={"timerange": "[3:0_7:0)"})
    check(r.status_code == 200, "list by timerange")
    got = r.json()
    check([g["timerange"] for g in got] == ["[2:0_4:0)", "[4:0_6:0)", "[6:0_8:0)"], "timerange query", got)
    for g in got:
        url = g["get_urls"][0]["url"]
        check(requests.get(url).content == payloads[g["object_id"]], "get_url returns the uploaded bytes", url)

    # Paging: limit=2 with Link rel=next until the end.
    url, seen = f"{base}/flows/{flow_id}/segments?limit=2", []
    while url:
        r = s.get(url)
        seen += [g["timerange"] for g in r.json()]
        url = r.links.get("next", {}).get("url")
    check(len(seen) == 6 and seen == sorted(seen, key=lambda t: int(t[1:].split(":")[0])), "paging", seen)

    f = s.get(f"{base}/flows/{flow_id}", params={"include_timerange": "true"}).json()
    check(f["timerange"] == "[0:0_12:0)", "flow timerange", f.get("timerange"))
    o = s.get(f"{base}/objects/{objs[0]['object_id']}").json()
    check(o["referenced_by_flows"] == [flow_id], "object referenced_by_flows", o)
    src = s.get(f"{base}/sources/{source_id}")
    check(src.status_code == 200 and src.json()["format"] == "urn:x-nmos:format:video", "source created")

    r = s.delete(f"{base}/flows/{flow_id}/segments", params={"timerange": "[0:0_4:0)"})
    check(r.status_code in (202, 204), "delete range", r.status_code)
    left = [g["timerange"] for g in s.get(f"{base}/flows/{flow_id}/segments").json()]
    check(left == ["[4:0_6:0)", "[6:0_8:0)", "[8:0_10:0)", "[10:0_12:0)"], "range deleted", left)

    if a.seed:
        with open(a.seed, "w") as fh:
            fh.write(f"DREY_ST_FLOW={flow_id}\nDREY_ST_SOURCE={source_id}\nDREY_ST_OBJECT={objs[3]['object_id']}\n")
    else:
        r = s.delete(f"{base}/flows/{flow_id}")
        if r.status_code == 202:
            loc = r.headers["Location"]
            for _ in range(100):
                if s.get(f"{base}{loc}").json()["status"] == "done":
                    break
                time.sleep(0.1)
        else:
            check(r.status_code == 204, "delete flow", r.status_code)
        check(s.get(f"{base}/flows/{flow_id}").status_code == 404, "flow gone")
    print(f"spec-client: {passed} passed, 0 failed")


if __name__ == "__main__":
    main()
