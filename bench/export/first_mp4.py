#!/usr/bin/env python3
"""bench/export/first_mp4.py -- the first MP4 export of a 10-minute RTMP recording, with
`rtmp_sample_tables` off and on, in turns (local directory + SQLite).

For each variant: a fresh drey; ffmpeg pushes bench/rtmp's 2 Mbit/s clip 10 times over
(600 s, as fast as drey takes it); then curl downloads the whole flow as MP4 twice (first
and second export) and the export's `drey_export_sample_tables_total{from}` says whether
planning read the segments.

Usage: bench/export/first_mp4.py DREY_BINARY ROUNDS [OBJECTS]
(OBJECTS: drey's --objects, say s3://BUCKET with AWS_ENDPOINT_URL and keys in the
environment; default the local directory)
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rtmp"))
import run as R
drey = sys.argv[1]; rounds = int(sys.argv[2])
objects = sys.argv[3:4]
work = tempfile.mkdtemp(prefix="drey-first-mp4-")
clip = os.path.join(work, "clip.flv"); R.make_clip(clip)
def get(u): return json.load(urllib.request.urlopen(u))
for r in range(rounds):
    for on in ([False, True] if r % 2 == 0 else [True, False]):
        d = tempfile.mkdtemp(dir=work)
        open(d + "/drey.toml", "w").write(f"rtmp_sample_tables = {'true' if on else 'false'}\n")
        srv = subprocess.Popen([drey, "serve", "--config", d + "/drey.toml", "--data-dir", d, "--http", "127.0.0.1:18181", "--rtmp", "127.0.0.1:19351"]
            + (["--objects", objects[0]] if objects else []),
            env=dict(os.environ, DREY_LOG="warn"), stdout=subprocess.DEVNULL, stderr=open(d + "/drey.log", "w"))
        R.wait_port(18181); base = "http://127.0.0.1:18181"
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-stream_loop", "9", "-i", clip, "-c", "copy", "-f", "flv", "rtmp://127.0.0.1:19351/live/rec"], check=True)
        time.sleep(4)  # last segment stored, a tables batch written
        flow = [f for f in get(base + "/flows?label=rec") if f.get("container") == "video/mp2t"][0]
        url = f"{base}/flows/{flow['id']}/download?format=mp4"
        m0 = R.metrics(base)
        t = time.time(); out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", url], capture_output=True, text=True); first = time.time() - t
        m1 = R.metrics(base)
        t = time.time(); subprocess.run(["curl", "-s", "-o", "/dev/null", url]); second = time.time() - t
        k = lambda m, f: m.get(f'drey_export_sample_tables_total{{from="{f}"}}', 0)
        kept = R.metrics(base).get('drey_ingest_sample_tables_total{result="kept"}', 0)
        print(f"tables {'on ' if on else 'off'}  kept {kept:.0f}  "
              f"first {first:.3f} s ({int(out.stdout)/first/1e6:.0f} MB/s, from index {k(m1,'index')-k(m0,'index'):.0f} segment {k(m1,'segment')-k(m0,'segment'):.0f})  second {second:.3f} s", flush=True)
        srv.send_signal(signal.SIGTERM); srv.wait(timeout=30)
shutil.rmtree(work, ignore_errors=True)
