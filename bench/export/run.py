#!/usr/bin/env python3
"""bench/export/run.py -- span export throughput vs raw object-store reads, and memory.

For each backend (local directory; and Ceph RGW / S3 when AWS_ENDPOINT_URL and keys are in
the environment and --bucket is given), starts a release drey (SQLite index), registers
through the TAMS API a 10-minute MPEG-TS flow of 300 real 2 s segments (a 2 Mbit/s 720p30
H.264 + AAC clip, ~560 KB each), then in one run:
  * raw: reads the same 300 objects straight from the store (files, or S3 GETs with
    boto3) with N parallel readers, N = drey's export read-ahead (8);
  * drey: downloads the 10-minute span from /flows/{id}/download (curl to /dev/null);
  * drey_cli: `drey export -o -` straight from the store, read from its stdout (no HTTP);
  * drey_mp4: the same span as a progressive MP4 (format=mp4); its first run reads every
    segment twice (sample tables to plan the file, then the samples), later runs find the
    tables cached; MB/s counts the segment bytes exported, as for TS;
alternating raw/drey twice and reporting MB/s and the drey/raw ratio; and the peak RSS of
`drey export` (direct from the store, TS and MP4) for a 1-minute and a 10-minute span.

Usage: bench/export/run.py [--drey target/release/drey] [--bucket NAME]
Needs: ffmpeg, curl; boto3 for S3.
"""
import argparse, concurrent.futures, json, os, shutil, signal, subprocess, sys, tempfile, time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hls"))
import run as hls  # noqa: E402  (Api, make_segments, free_port, wait_http)

READ_AHEAD = 8
SEG_NS = 2_000_000_000


def start(drey, work, name, objects=None):
    port = hls.free_port()
    data = os.path.join(work, name)
    cmd = [drey, "serve", "--data-dir", data, "--http", f"127.0.0.1:{port}", "--rtmp", "off"]
    if objects:
        cmd += ["--objects", objects]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(work, f"{name}.log"), "w"))
    hls.wait_http(f"http://127.0.0.1:{port}/service")
    return p, port, data


def timed(fn):
    t = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t


def drey_download(url):
    out = subprocess.run(["curl", "-sg", "-o", "/dev/null", "-w", "%{size_download}", url],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def peak_rss_kb(cmd):
    """Peak RSS of a command, from its own VmHWM polled until it exits (wait4's
    ru_maxrss would include this Python process's size at fork time)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.005)
    if p.returncode != 0:
        sys.exit(f"{cmd} failed")
    return peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drey", default="target/release/drey")
    ap.add_argument("--bucket", default=None, help="S3 bucket (endpoint/keys from AWS_*)")
    a = ap.parse_args()
    drey = os.path.abspath(a.drey)
    work = tempfile.mkdtemp(prefix="drey-export-bench-")
    procs = []
    results = {}
    try:
        segdir = os.path.join(work, "segments")
        os.makedirs(segdir)
        names = hls.make_segments(segdir)
        blobs = [open(os.path.join(segdir, n), "rb").read() for n in names]
        backends = [("local", None)]
        if a.bucket and os.environ.get("AWS_ENDPOINT_URL"):
            backends.append(("rgw", f"s3://{a.bucket}"))
        for name, objects in backends:
            p, port, data = start(drey, work, name, objects)
            procs.append(p)
            api = hls.Api(port)
            flow = api.flow(f"export-{name}")
            ten = [blobs[i % len(blobs)] for i in range(300)]
            ids = api.upload(flow, ten)
            t0 = 1_900_000_000 * 10**9
            api.register(flow, ids, t0, [SEG_NS] * len(ids))
            total = sum(map(len, ten))
            span10 = f"[{t0 // 10**9}:0_{t0 // 10**9 + 600}:0)"
            span1 = f"[{t0 // 10**9}:0_{t0 // 10**9 + 60}:0)"
            url = f"http://127.0.0.1:{port}/flows/{flow}/download?timerange={span10}"

            if objects is None:
                root = os.path.join(data, "objects", "objects")
                def read_one(oid):
                    with open(os.path.join(root, oid), "rb") as f:
                        return len(f.read())
            else:
                import boto3
                s3 = boto3.client("s3")
                def read_one(oid):
                    return len(s3.get_object(Bucket=a.bucket, Key=f"objects/{oid}")["Body"].read())

            def raw():
                with concurrent.futures.ThreadPoolExecutor(READ_AHEAD) as ex:
                    return sum(ex.map(read_one, ids))

            direct_cmd = [drey, "export", flow, "--timerange", span10, "-o", "-", "-q",
                          "--data-dir", data, "--read-ahead", str(READ_AHEAD)]
            if objects:
                direct_cmd += ["--objects", objects]

            def direct():
                # Straight to /dev/null: the pipe to this script would be the bottleneck.
                subprocess.run(direct_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=True)
                return total

            runs = {"raw": [], "drey": [], "drey_cli": [], "drey_mp4": []}
            mp4_url = url + "&format=mp4"
            for _ in range(2):
                n, s = timed(raw)
                assert n == total, (n, total)
                runs["raw"].append(n / s / 1e6)
                n, s = timed(lambda: drey_download(url))
                assert n == total, (n, total)
                runs["drey"].append(n / s / 1e6)
                n, s = timed(direct)
                assert n == total, (n, total)
                runs["drey_cli"].append(n / s / 1e6)
                n, s = timed(lambda: drey_download(mp4_url))
                assert n > total * 0.9, (n, total)
                runs["drey_mp4"].append(total / s / 1e6)
            best = {k: max(v) for k, v in runs.items()}
            rss = {}
            for label, span, fmt in [("1min", span1, "ts"), ("10min", span10, "ts"),
                                     ("mp4_1min", span1, "mp4"), ("mp4_10min", span10, "mp4")]:
                out = os.path.join(work, f"{name}-{label}.{fmt}")
                cmd = [drey, "export", flow, "--timerange", span, "-o", out, "-q",
                       "--format", fmt, "--data-dir", data, "--read-ahead", str(READ_AHEAD)]
                if objects:
                    cmd += ["--objects", objects]
                rss[label] = peak_rss_kb(cmd)
                os.remove(out)
            results[name] = {
                "bytes": total,
                "raw_MBps": [round(x, 1) for x in runs["raw"]],
                "drey_MBps": [round(x, 1) for x in runs["drey"]],
                "drey_cli_MBps": [round(x, 1) for x in runs["drey_cli"]],
                "ratio_best": round(best["drey"] / best["raw"], 3),
                "ratio_cli_best": round(best["drey_cli"] / best["raw"], 3),
                "drey_mp4_MBps_cold_warm": [round(x, 1) for x in runs["drey_mp4"]],
                "ratio_mp4_cold": round(runs["drey_mp4"][0] / runs["raw"][0], 3),
                "ratio_mp4_warm": round(runs["drey_mp4"][1] / runs["raw"][1], 3),
                "export_peak_rss_kb": rss,
            }
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
        print(json.dumps(results, indent=2))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
