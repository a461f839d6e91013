#!/usr/bin/env python3
"""bench/rtmp/run.py -- RTMP ingest CPU cost: drey vs nginx-rtmp, side by side in one run.

For each publisher count N, starts a fresh server (drey on SQLite + local directory, then
nginx-rtmp with `hls on` writing to local disk), pushes the same pre-encoded 2 Mbps 720p30
H.264/AAC clip N times with `ffmpeg -re -stream_loop -1 -c copy`, and measures the
server's CPU seconds over a window in which all N publishers are live: `perf stat -e
task-clock` on all its processes and threads (exact scheduler time). /proc utime+stime is
printed beside it but is tick-sampled, and biased low for servers woken in step with the
publishers' timer-paced sends (nginx-rtmp read 2x lower there than under perf). Reports CPU seconds per stream-second, the drey/nginx
ratio, drey's segment-closed-to-indexed latency (p50/p99) and frames received vs stored.

Usage: bench/rtmp/run.py [--counts 10,50,100] [--window 45] [--drey target/release/drey]
       bench/rtmp/run.py --counts 10 --ab 'CONFIG A' --ab 'CONFIG B' [--rounds 4]
         (drey alone, two configurations in turns: what an option costs)
Needs: ffmpeg, nginx + libnginx-mod-rtmp (Debian), a release build of drey.
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / HZ


def measure(pids, window):
    """(task-clock seconds by perf, tick-sampled /proc seconds) over `window` seconds."""
    c0 = cpu_seconds(pids)
    r = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "-p",
                        ",".join(str(p) for p in pids), "--", "sleep", str(window)],
                       capture_output=True, text=True)
    c1 = cpu_seconds(pids)
    exact = float("nan")
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[2].startswith("task-clock"):
            exact = float(f[0]) / 1000.0
    return exact, c1 - c0


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def make_clip(path):
    if os.path.exists(path):
        return
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", "60", "-c:v", "libx264", "-preset", "veryfast",
                    "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M", "-g", "60",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", path], check=True)


def publishers(clip, url_of, n, seconds, logdir):
    procs = []
    for i in range(n):
        log = open(os.path.join(logdir, f"pub{i}.log"), "w")
        procs.append((subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-re",
             "-stream_loop", "-1", "-i", clip, "-t", str(seconds), "-c", "copy",
             "-f", "flv", url_of(i)], stdout=subprocess.DEVNULL, stderr=log), log))
    return procs


def finish(procs, logdir):
    frames, failed = 0, 0
    for i, (p, log) in enumerate(procs):
        rc = p.wait()
        log.close()
        text = open(os.path.join(logdir, f"pub{i}.log")).read()
        m = re.findall(r"frame=\s*(\d+)", text)
        frames += int(m[-1]) if m else 0
        if rc != 0 or "rror" in text:
            failed += 1
    return frames, failed


def metrics(base):
    text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        k, v = line.rsplit(" ", 1)
        try:
            out[k] = out.get(k, 0.0) + float(v)
        except ValueError:
            pass
    return out


def wait_port(port, timeout=20):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} never opened")


# Work directories, deleted only when every run is done: on an ext4 without a journal (as
# on these VMs) each file creation scans past inodes deleted in the last minutes
# (`recently_deleted`), so deleting one server's files just before the other's run would
# tax whichever runs next.
LEFT = []


def run_drey(drey, clip, n, window, warmup, work, toml=""):
    d = tempfile.mkdtemp(dir=work)
    http, rtmp = 18181, 19351
    env = dict(os.environ, DREY_LOG="warn")
    with open(os.path.join(d, "drey.toml"), "w") as f:
        f.write(toml.replace(";", "\n"))
    srv = subprocess.Popen([drey, "serve", "--config", os.path.join(d, "drey.toml"),
                            "--data-dir", d, "--http", f"127.0.0.1:{http}",
                            "--rtmp", f"127.0.0.1:{rtmp}"], env=env,
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "drey.log"), "w"))
    wait_port(http)
    base = f"http://127.0.0.1:{http}"
    procs = publishers(clip, lambda i: f"rtmp://127.0.0.1:{rtmp}/live/bench{i}", n,
                       warmup + window + 5, d)
    time.sleep(warmup)
    t0 = time.time()
    exact, ticks = measure([srv.pid], window)
    t1 = time.time()
    sent, failed = finish(procs, d)
    # Let the last segments reach the index.
    time.sleep(3)
    m = metrics(base)
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=30)
    lat = lambda q: m.get(f'drey_ingest_segment_latency_seconds{{quantile="{q}"}}', float("nan"))
    LEFT.append(d)
    return {
        "cpu_s": exact, "proc_cpu_s": ticks, "wall_s": window,
        "sent_frames": sent, "failed_publishers": failed,
        "received_frames": m.get("drey_ingest_video_frames_closed_total", 0),
        "stored_frames": m.get("drey_ingest_video_frames_stored_total", 0),
        "segments": m.get("drey_ingest_segments_stored_total", 0),
        "upload_failures": m.get("drey_ingest_upload_failures_total", 0),
        "lat_p50_ms": lat("0.5") * 1000, "lat_p99_ms": lat("0.99") * 1000,
    }


NGINX_CONF = """
{user}
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events {{ worker_connections 4096; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    chunk_size 4096;
    application live {{
      live on;
      hls on;
      hls_path {d}/hls;
      hls_fragment 2s;
      hls_playlist_length 60s;
    }}
  }}
}}
"""


def run_nginx(clip, n, window, warmup, work):
    d = tempfile.mkdtemp(dir=work)
    port = 19352
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        # As root, nginx's workers run as `nobody`, who cannot write into this 0700
        # directory: nginx-rtmp then logs "hls: stat() failed ... Permission denied" and
        # writes no HLS at all (every figure before 2026-12-03 was taken like that).
        user = "user root;" if os.geteuid() == 0 else ""
        f.write(NGINX_CONF.format(d=d, port=port, user=user))
    srv = subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    procs = publishers(clip, lambda i: f"rtmp://127.0.0.1:{port}/live/bench{i}", n,
                       warmup + window + 5, d)
    time.sleep(warmup)
    pids = [srv.pid] + children(srv.pid)
    exact, ticks = measure(pids, window)
    sent, failed = finish(procs, d)
    # nginx-rtmp must have written what drey writes: fragments of every stream.
    hls_dir = os.path.join(d, "hls")
    fragments = [f for f in os.listdir(hls_dir) if f.endswith(".ts")] if os.path.isdir(hls_dir) else []
    streams = {f.rsplit("-", 1)[0] for f in fragments}
    with open(os.path.join(d, "error.log")) as f:
        hls_errors = sum(1 for line in f if "hls:" in line)
    srv.send_signal(signal.SIGQUIT)
    try:
        srv.wait(timeout=20)
    except subprocess.TimeoutExpired:
        srv.kill()
    LEFT.append(d)
    if len(streams) < n or hls_errors:
        sys.exit(f"nginx-rtmp wrote HLS for {len(streams)} of {n} streams "
                 f"({hls_errors} hls errors in its log): not a fair baseline")
    return {"cpu_s": exact, "proc_cpu_s": ticks, "wall_s": window, "sent_frames": sent,
            "failed_publishers": failed, "hls_fragments": len(fragments)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="10,50,100")
    ap.add_argument("--window", type=float, default=45)
    ap.add_argument("--warmup", type=float, default=8)
    ap.add_argument("--drey", default="target/release/drey")
    ap.add_argument("--work", default=tempfile.gettempdir())
    ap.add_argument("--drey-config", default="", help="extra drey TOML, lines split by ';'")
    ap.add_argument("--ab", action="append", metavar="CONFIG",
                    help="drey only: run drey with each of these extra configs in turns "
                         "(repeat the flag), --rounds times per publisher count")
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    clip = os.path.join(a.work, "drey-bench-720p30-2M.flv")
    make_clip(clip)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, clip {os.path.getsize(clip) * 8 / 60 / 1e6:.2f} Mbit/s")
    if a.ab:
        try:
            ab(a, clip)
        finally:
            for d in LEFT:
                shutil.rmtree(d, ignore_errors=True)
        return
    rows = []
    try:
        for i, n in enumerate(int(x) for x in a.counts.split(",")):
            # Which server goes first alternates: neither always meets the page cache and
            # the file system as the other one left them.
            if i % 2 == 0:
                dr = run_drey(a.drey, clip, n, a.window, a.warmup, a.work, a.drey_config)
                ng = run_nginx(clip, n, a.window, a.warmup, a.work)
            else:
                ng = run_nginx(clip, n, a.window, a.warmup, a.work)
                dr = run_drey(a.drey, clip, n, a.window, a.warmup, a.work, a.drey_config)
            report(rows, n, dr, ng)
    finally:
        for d in LEFT:
            shutil.rmtree(d, ignore_errors=True)
    table(rows)


def ab(a, clip):
    """drey's CPU per stream-second under each config of --ab, taken in turns (the first
    variant leads in odd rounds, the last in even ones), and each one's mean against the
    first's."""
    for n in (int(x) for x in a.counts.split(",")):
        per = {v: [] for v in a.ab}
        for r in range(a.rounds):
            order = a.ab if r % 2 == 0 else list(reversed(a.ab))
            for v in order:
                extra = ";".join(x for x in (a.drey_config, v) if x)
                dr = run_drey(a.drey, clip, n, a.window, a.warmup, a.work, extra)
                per[v].append(dr["cpu_s"] / (n * dr["wall_s"]))
                print(json.dumps({"publishers": n, "round": r, "config": v,
                                  "cpu_per_stream_s": per[v][-1],
                                  "sent": dr["sent_frames"],
                                  "stored": int(dr["stored_frames"])}), flush=True)
        base = sum(per[a.ab[0]]) / len(per[a.ab[0]])
        print(f"\n| publishers | config | CPU s / stream-s, each round | mean | vs first |")
        print("|---|---|---|---|---|")
        for v, xs in per.items():
            m = sum(xs) / len(xs)
            print(f"| {n} | `{v}` | {' '.join(f'{x:.5f}' for x in xs)} | {m:.5f} | {m / base:.2f} |")


def report(rows, n, dr, ng):
    per = lambda r: r["cpu_s"] / (n * r["wall_s"])
    row = {"publishers": n, "drey": dr, "nginx": ng,
           "drey_cpu_per_stream_s": per(dr), "nginx_cpu_per_stream_s": per(ng),
           "ratio": per(dr) / per(ng) if per(ng) else float("nan")}
    rows.append(row)
    print(json.dumps(row), flush=True)


def table(rows):
    print()
    print("| publishers | drey CPU s / stream-s | nginx-rtmp CPU s / stream-s | drey / nginx | "
          "drey closed→indexed p50 / p99 | video frames sent / segmented / stored (drey) | failed publishers drey / nginx |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["drey"]
        print(f"| {r['publishers']} | {r['drey_cpu_per_stream_s']:.5f} | {r['nginx_cpu_per_stream_s']:.5f} | "
              f"{r['ratio']:.2f} | {d['lat_p50_ms']:.1f} ms / {d['lat_p99_ms']:.1f} ms | "
              f"{d['sent_frames']} / {int(d['received_frames'])} / {int(d['stored_frames'])} | "
              f"{d['failed_publishers']} / {r['nginx']['failed_publishers']} |")


if __name__ == "__main__":
    main()
