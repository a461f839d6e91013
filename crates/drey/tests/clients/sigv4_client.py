#!/usr/bin/env python3
"""SigV4 (and legacy S3 SigV2) requests to drey signed by botocore (the signers boto3
uses), for tests/auth.rs.

Usage: sigv4_client.py BASE KEY SECRET FLOW_ID
Prints one JSON object: the status of each request made.
"""
import json, sys, time, urllib.request, urllib.error
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

base, key, secret, flow = sys.argv[1:5]
creds = Credentials(key, secret)


def send(req):
    data = req.body.encode() if isinstance(req.body, str) else req.body
    r = urllib.request.Request(req.url, data=data or None, method=req.method,
                               headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def signed(method, path, body=None, secret_=None, headers=None):
    req = AWSRequest(method=method, url=base + path, data=body,
                     headers={"content-type": "application/json", **(headers or {})})
    SigV4Auth(Credentials(key, secret_ or secret), "tams", "us-east-1").add_auth(req)
    return send(req.prepare())


def presigned(path, expires=60):
    req = AWSRequest(method="GET", url=base + path)
    SigV4QueryAuth(creds, "tams", "us-east-1", expires=expires).add_auth(req)
    return req.url


out = {}
body = json.dumps({"id": flow, "source_id": flow, "format": "urn:x-nmos:format:multi",
                   "container": "video/mp2t", "label": "signed"})
out["put_flow"] = signed("PUT", f"/flows/{flow}", body)[0]
out["get_flow"] = signed("GET", f"/flows/{flow}")[0]
out["list_flows"] = signed("GET", "/flows?limit=5&label=signed")[0]
status, text = signed("GET", f"/flows/{flow}", secret_="not-the-secret")
out["wrong_secret"] = status
out["wrong_secret_reason"] = json.loads(text)["summary"]
out["wrong_secret_leaks"] = secret in text
# Tampered: signed for one body, sent with another.
req = AWSRequest(method="PUT", url=base + f"/flows/{flow}/label", data=b'"a"',
                 headers={"content-type": "application/json"})
SigV4Auth(creds, "tams", "us-east-1").add_auth(req)
p = req.prepare()
p.body = b'"b"'
p.headers["content-length"] = "3"
status, text = send(p)
out["tampered_body"] = status
out["tampered_reason"] = json.loads(text)["summary"]
url = presigned(f"/flows/{flow}")
try:
    out["presigned"] = urllib.request.urlopen(url).status
except urllib.error.HTTPError as e:
    out["presigned"] = e.code
try:
    short = presigned(f"/flows/{flow}", expires=1)
    time.sleep(2.1)
    urllib.request.urlopen(short)
    out["presigned_expired"] = 200
except urllib.error.HTTPError as e:
    out["presigned_expired"] = e.code
    out["presigned_expired_reason"] = json.loads(e.read())["summary"]
try:
    urllib.request.urlopen(url.replace(flow, flow[:-1] + ("0" if flow[-1] != "0" else "1")))
    out["presigned_tampered"] = 200
except urllib.error.HTTPError as e:
    out["presigned_tampered"] = e.code

# Signature Version 2 (botocore's "s3" and "s3-query" signers).
def v2(method, path, body=None, secret_=None):
    req = AWSRequest(method=method, url=base + path, data=body,
                     headers={"content-type": "application/json"})
    HmacV1Auth(Credentials(key, secret_ or secret)).add_auth(req)
    return send(req.prepare())


out["v2_get_flow"] = v2("GET", f"/flows/{flow}")[0]
out["v2_put_label"] = v2("PUT", f"/flows/{flow}/label", '"v2"')[0]
status, text = v2("GET", f"/flows/{flow}", secret_="not-the-secret")
out["v2_wrong_secret"] = status
out["v2_wrong_secret_reason"] = json.loads(text)["summary"]
req = AWSRequest(method="GET", url=base + f"/flows/{flow}/label")
HmacV1QueryAuth(creds, expires=60).add_auth(req)
try:
    with urllib.request.urlopen(req.prepare().url) as resp:
        out["v2_presigned"] = resp.status
        out["v2_presigned_label"] = json.loads(resp.read())
except urllib.error.HTTPError as e:
    out["v2_presigned"] = e.code
print(json.dumps(out))
