#!/usr/bin/env python3
"""bench/export/run.py -- span export throughput vs raw object-store reads, and memory.

For each backend (local directory; and Ceph RGW / S3 when AWS_ENDPOINT_URL and keys are in
the environment and --bucket is given), starts a release drey (SQLite index), registers
through the TAMS API a 10-minute MPEG-TS flow of 300 real 2 s segments (a 2 Mbit/s 720p30
H.264 + AAC clip, ~560 KB each), then in one run:
  * raw: reads the same 300 objects straight from the store (files, or S3 GETs with
    boto3) with N parallel readers, N = drey's export read-ahead (8); on S3 also
    raw_curl: the same GETs by curl (presigned URLs, N transfers at once), a faster
    reader than boto3, and the ratios are taken against the faster of the two;
  * http_ref (local directory only): the HTTP ceiling of this machine: nginx serving the
    object files with sendfile (no user-space copy) to curl, N transfers at once;
  * drey: downloads the 10-minute span from /flows/{id}/download (curl to /dev/null);
  * drey_cli: `drey export -o -` straight from the store, read from its stdout (no HTTP);
  * drey_mp4: the same span as a progressive MP4 (format=mp4); its first run reads every
    segment twice (sample tables to plan the file, then the samples) and keeps the tables
    in the index, later runs find them in memory; MB/s counts the segment bytes exported,
    as for TS;
  * drey_cli_mp4: the MP4 through `drey export` (a fresh process: nothing in memory, the
    tables from the index, as after a restart or on another instance);
alternating raw/drey --rounds times (2) and reporting MB/s and the drey/raw ratio; and the peak RSS of
`drey export` (direct from the store, TS and MP4) for a 1-minute and a 10-minute span.

With --cold, every reader of the local directory starts with the 300 objects evicted from
the page cache (posix_fadvise DONTNEED after a sync; no root needed): the export of a
recorded span that is no longer in memory, read from the disk. Without it (the default)
every reader finds them cached, and the raw reader runs at memory speed.

With --tams-tables, drey runs with `tams_sample_tables = true`: after registering the
segments the script waits until the background worker has kept every segment's sample
tables (and reports how long that took, `tables_kept_s`), so "MP4 first" is the first
export of a span whose tables are in the index.

With --fmp4 the flow holds fragmented MP4 segments (the same clip, `video/mp4`, with an
init object) instead of MPEG-TS, and only the MP4 exports run (a TS file is not made of
fMP4 segments): the export path that sends slices of the segments instead of demuxing.

With --store-cpu N (S3 only), the store's processes (DREY_RGW_PIDS, as scripts/ceph-rgw.sh
writes them: mon, OSD, RGW, every thread) run on CPU N only, and this script, drey and every
reader on the other CPUs, while the S3 backend is measured: the store on a machine of its
own, as in production, instead of competing with its reader for the same cores. The local
backend runs first, on every CPU; the store's affinity is put back afterwards.

Usage: bench/export/run.py [--drey target/release/drey] [--bucket NAME] [--cold] [--tams-tables] [--fmp4] [--store-cpu N]
Needs: ffmpeg, curl, nginx (Debian `nginx`); boto3 for S3.
"""
import argparse, concurrent.futures, json, os, shutil, signal, subprocess, sys, tempfile, time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hls"))
import run as hls  # noqa: E402  (Api, make_segments, free_port, wait_http)

READ_AHEAD = 8
SEG_NS = 2_000_000_000


def start(drey, work, name, objects=None, config=""):
    port = hls.free_port()
    data = os.path.join(work, name)
    conf = os.path.join(work, f"{name}.toml")
    with open(conf, "w") as f:
        f.write(config)
    cmd = [drey, "serve", "--config", conf, "--data-dir", data, "--http", f"127.0.0.1:{port}",
           "--rtmp", "off"]
    if objects:
        cmd += ["--objects", objects]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(work, f"{name}.log"), "w"))
    hls.wait_http(f"http://127.0.0.1:{port}/service")
    return p, port, data


def timed(fn, before=lambda: None):
    """Runs `fn` (after `before`, untimed); returns its result and the seconds it took."""
    before()
    t = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t


def drey_download(url):
    out = subprocess.run(["curl", "-sg", "-o", "/dev/null", "-w", "%{size_download}", url],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def curl_parallel(urls, work):
    """Downloads `urls` with one curl, READ_AHEAD transfers at once; returns the bytes."""
    cfg = os.path.join(work, "curl.cfg")
    with open(cfg, "w") as f:
        for u in urls:
            f.write(f'url = "{u}"\noutput = "/dev/null"\nwrite-out = "%{{size_download}}\\n"\n')
    out = subprocess.run(["curl", "-sgf", "-Z", "--parallel-max", str(READ_AHEAD), "-K", cfg],
                         capture_output=True, text=True, check=True)
    return sum(int(x) for x in out.stdout.split())


NGINX_CONF = """
daemon off;
master_process on;
{user}
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
"""


def start_nginx(root, work):
    """nginx serving `root` with sendfile: the fastest HTTP file server to compare with."""
    d = os.path.join(work, "nginx")
    os.makedirs(d, exist_ok=True)
    port = hls.free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        # Run as root, workers read the (private) work directory as this user.
        user = "user root;" if os.geteuid() == 0 else ""
        f.write(NGINX_CONF.format(d=d, port=port, root=root, user=user))
    p = subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # 403/404 for the directory: it is up
        except OSError:
            if time.time() > deadline or p.poll() is not None:
                sys.exit("nginx did not start")
            time.sleep(0.05)
    return p, port


def set_affinity(pids, cpus):
    """Pins every thread of `pids` to `cpus` (threads they start later inherit it)."""
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except ProcessLookupError:
                pass  # a thread that ended meanwhile


def metric(port, name):
    """The value of one metric line of drey's /metrics (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def evict(paths):
    """Drops `paths` from the page cache (clean pages only: sync first)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


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
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of every reader in turn (at least 2: the first MP4 one is the first export)")
    ap.add_argument("--cold", action="store_true",
                    help="local directory: evict the objects from the page cache before every reader")
    ap.add_argument("--tams-tables", action="store_true",
                    help="tams_sample_tables = true, and wait for the tables before reading")
    ap.add_argument("--fmp4", action="store_true",
                    help="fragmented MP4 segments instead of MPEG-TS (MP4 exports only)")
    ap.add_argument("--store-cpu", type=int, default=None,
                    help="S3: run the store (DREY_RGW_PIDS) on this CPU, drey and the readers on the others")
    ap.add_argument("--long-minutes", type=int, default=0,
                    help="also measure export peak RSS for a span this long (the flow grows)")
    a = ap.parse_args()
    drey = os.path.abspath(a.drey)
    work = tempfile.mkdtemp(prefix="drey-export-bench-")
    procs = []
    results = {}
    all_cpus = os.sched_getaffinity(0)
    store_pids = [int(x) for x in os.environ.get("DREY_RGW_PIDS", "").split()]
    if a.store_cpu is not None and (a.store_cpu not in all_cpus or len(all_cpus) < 2 or not store_pids):
        sys.exit("--store-cpu needs DREY_RGW_PIDS and a CPU of this process's set other than the last one left")
    try:
        segdir = os.path.join(work, "segments")
        os.makedirs(segdir)
        names = hls.make_segments(segdir, a.fmp4)
        blobs = [open(os.path.join(segdir, n), "rb").read() for n in names]
        backends = [("local", None)]
        if a.bucket and os.environ.get("AWS_ENDPOINT_URL"):
            backends.append(("rgw", f"s3://{a.bucket}"))
        for name, objects in backends:
            pinned = objects is not None and a.store_cpu is not None
            if pinned:
                set_affinity(store_pids, {a.store_cpu})
                os.sched_setaffinity(0, all_cpus - {a.store_cpu})
            config = "tams_sample_tables = true\n" if a.tams_tables else ""
            p, port, data = start(drey, work, name, objects, config)
            procs.append(p)
            api = hls.Api(port)
            flow = api.flow(f"export-{name}", "video/mp4" if a.fmp4 else "video/mp2t")
            init_id = None
            if a.fmp4:
                with open(os.path.join(segdir, "init.mp4"), "rb") as f:
                    init_id = api.upload(flow, [f.read()])[0]
            n_segs = max(300, a.long_minutes * 30)
            segs = [blobs[i % len(blobs)] for i in range(n_segs)]
            all_ids = api.upload(flow, segs)
            t0 = 1_900_000_000 * 10**9
            registered = time.perf_counter()
            api.register(flow, all_ids, t0, [SEG_NS] * len(all_ids), init_id)
            tables_kept_s = None
            if a.tams_tables:
                kept = 'drey_segments_sample_tables_total{result="kept"}'
                while metric(port, kept) < len(all_ids):
                    assert time.perf_counter() - registered < 300, "tables not kept in 300 s"
                    time.sleep(0.01)
                tables_kept_s = round(time.perf_counter() - registered, 3)
            ids = all_ids[:300]  # the 10-minute span every reader below reads
            total = sum(map(len, segs[:300]))
            span10 = f"[{t0 // 10**9}:0_{t0 // 10**9 + 600}:0)"
            span1 = f"[{t0 // 10**9}:0_{t0 // 10**9 + 60}:0)"
            url = f"http://127.0.0.1:{port}/flows/{flow}/download?timerange={span10}"

            extra = {}  # other readers of the same objects: name -> fn returning bytes
            if objects is None:
                root = os.path.join(data, "objects", "objects")
                def read_one(oid):
                    with open(os.path.join(root, oid), "rb") as f:
                        return len(f.read())
                if a.cold:
                    os.sync()
                    paths = [os.path.join(root, oid) for oid in ids]
                    cold = lambda: evict(paths)
                ng, ng_port = start_nginx(root, work)
                procs.append(ng)
                ng_urls = [f"http://127.0.0.1:{ng_port}/{oid}" for oid in ids]
                extra["http_ref"] = lambda: curl_parallel(ng_urls, work)
            else:
                import boto3
                s3 = boto3.client("s3")
                def read_one(oid):
                    return len(s3.get_object(Bucket=a.bucket, Key=f"objects/{oid}")["Body"].read())
                signed = [s3.generate_presigned_url(
                    "get_object", Params={"Bucket": a.bucket, "Key": f"objects/{oid}"},
                    ExpiresIn=3600) for oid in ids]
                extra["raw_curl"] = lambda: curl_parallel(signed, work)

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

            def direct_mp4():
                subprocess.run(direct_cmd + ["--format", "mp4"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
                return total

            if objects is not None or not a.cold:
                cold = lambda: None
            runs = {"raw": [], "drey": [], "drey_cli": [], "drey_mp4": [], "drey_cli_mp4": []}
            runs.update({k: [] for k in extra})
            mp4_url = url + "&format=mp4"
            for _ in range(a.rounds):
                n, s = timed(raw, cold)
                assert n == total, (n, total)
                runs["raw"].append(n / s / 1e6)
                for k, fn in extra.items():
                    n, s = timed(fn, cold)
                    assert n == total, (k, n, total)
                    runs[k].append(n / s / 1e6)
                if not a.fmp4:
                    n, s = timed(lambda: drey_download(url), cold)
                    assert n == total, (n, total)
                    runs["drey"].append(n / s / 1e6)
                    n, s = timed(direct, cold)
                    assert n == total, (n, total)
                    runs["drey_cli"].append(n / s / 1e6)
                n, s = timed(lambda: drey_download(mp4_url), cold)
                assert n > total * 0.9, (n, total)
                runs["drey_mp4"].append(total / s / 1e6)
                n, s = timed(direct_mp4, cold)
                runs["drey_cli_mp4"].append(n / s / 1e6)
            best = {k: max(v) for k, v in runs.items() if v}
            ratio = lambda k, to: round(best[k] / to, 3) if k in best else None
            # The demanding denominator: the fastest raw reader of each round.
            raw_best = [max(r, c) for r, c in zip(runs["raw"], runs.get("raw_curl", runs["raw"]))]
            rss = {}
            spans = [("1min", span1, "ts"), ("10min", span10, "ts"),
                     ("mp4_1min", span1, "mp4"), ("mp4_10min", span10, "mp4")]
            if a.long_minutes:
                m = a.long_minutes
                span_long = f"[{t0 // 10**9}:0_{t0 // 10**9 + 60 * m}:0)"
                spans += [(f"{m}min", span_long, "ts"), (f"mp4_{m}min", span_long, "mp4")]
            if a.fmp4:
                spans = [s for s in spans if s[2] == "mp4"]
            for label, span, fmt in spans:
                out = os.path.join(work, f"{name}-{label}.{fmt}")
                cmd = [drey, "export", flow, "--timerange", span, "-o", out, "-q",
                       "--format", fmt, "--data-dir", data, "--read-ahead", str(READ_AHEAD)]
                if objects:
                    cmd += ["--objects", objects]
                rss[label] = peak_rss_kb(cmd)
                os.remove(out)
            results[name] = {
                "bytes": total,
                **({"store_cpu": a.store_cpu, "reader_cpus": sorted(all_cpus - {a.store_cpu})}
                   if pinned else {}),
                "tables_kept_s": tables_kept_s,
                "raw_MBps": [round(x, 1) for x in runs["raw"]],
                "drey_MBps": [round(x, 1) for x in runs["drey"]],
                "drey_cli_MBps": [round(x, 1) for x in runs["drey_cli"]],
                **{f"{k}_MBps": [round(x, 1) for x in runs[k]] for k in extra},
                "ratio_best": ratio("drey", max(raw_best)),
                "ratio_cli_best": ratio("drey_cli", max(raw_best)),
                **({"ratio_http_ref_best": ratio("http_ref", max(raw_best)),
                    "ratio_drey_to_http_ref": ratio("drey", best["http_ref"])}
                   if "http_ref" in extra else {}),
                "drey_mp4_MBps_first_warm": [round(x, 1) for x in runs["drey_mp4"]],
                "ratio_mp4_first": round(runs["drey_mp4"][0] / raw_best[0], 3),
                "ratio_mp4_warm": round(max(m / r for m, r in zip(runs["drey_mp4"][1:], raw_best[1:])), 3),
                # Each reader against the round's faster raw reader, round by round.
                "ratios_per_round": {k: [round(x / r, 3) for x, r in zip(runs[k], raw_best)]
                                     for k in ("drey", "drey_cli", "drey_mp4", "drey_cli_mp4")
                                     if runs[k]},
                "drey_cli_mp4_MBps": [round(x, 1) for x in runs["drey_cli_mp4"]],
                "ratio_cli_mp4_best": round(best["drey_cli_mp4"] / max(raw_best), 3),
                "export_peak_rss_kb": rss,
            }
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
            if pinned:
                os.sched_setaffinity(0, all_cpus)
                set_affinity(store_pids, all_cpus)
        print(json.dumps(results, indent=2))
    finally:
        # SIGTERM first: a SIGKILLed nginx master leaves its workers running.
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)
        if a.store_cpu is not None:
            try:
                set_affinity(store_pids, all_cpus)
            except FileNotFoundError:
                pass  # the store is gone


if __name__ == "__main__":
    main()
