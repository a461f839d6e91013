#!/usr/bin/env python3
"""bench/hls/run.py -- HLS playback from the index: playlist and segment throughput.

Starts a release drey on its embedded default (SQLite + local directory), registers through
the TAMS API
  * a flow of 1800 two-second MPEG-TS segments (one hour), and
  * a flow of 30 real segments of a 2 Mbit/s 720p30 H.264/AAC clip (~500 KB each),
then measures with wrk (loopback, keep-alive):
  1. the one-hour VOD playlist (`?timerange=` over the hour, 1800 segments), the same
     playlist revalidated with If-None-Match (304) and gzip-compressed (Accept-Encoding),
     and the live window of the same flow;
  2. segment GETs through drey (`/media/{id}`, streamed from the object store) against
     nginx serving the same 30 files from disk (sendfile on), side by side, alternating
     drey/nginx/drey/nginx, reporting requests/s and the drey/nginx ratio;
  3. the one-hour playlist with the playlist cache off, one connection: what generating
     it from the index costs.

Usage: bench/hls/run.py [--drey target/release/drey] [--duration 10] [--connections 32]
Needs: wrk, nginx, ffmpeg (Debian packages), a release build of drey.
"""
import argparse, http.client, json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request
import uuid

SEG_NS = 2_000_000_000


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} did not come up")


class Api:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port)

    def call(self, method, path, body=None, raw=None, headers=None):
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["content-type"] = "application/json"
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        out = r.read()
        if r.status >= 300:
            sys.exit(f"{method} {path}: {r.status} {out[:300]!r}")
        return json.loads(out) if out and r.getheader("content-type", "").startswith("application/json") else out

    def flow(self, label, container="video/mp2t"):
        fid = str(uuid.uuid4())
        self.call("PUT", f"/flows/{fid}", {"id": fid, "source_id": str(uuid.uuid4()),
                                            "format": "urn:x-nmos:format:multi",
                                            "container": container, "label": label})
        return fid

    def upload(self, fid, blobs):
        """Allocates, PUTs and returns object ids for `blobs` (bytes)."""
        ids = []
        for i in range(0, len(blobs), 1000):
            chunk = blobs[i:i + 1000]
            # Not presigned: the bytes go through drey, whatever the store.
            alloc = self.call("POST", f"/flows/{fid}/storage", {"limit": len(chunk), "presigned": False})
            for m, blob in zip(alloc["media_objects"], chunk):
                url = m["put_url"]["url"]
                path = url.split("//", 1)[1].split("/", 1)[1]
                self.call("PUT", "/" + path, raw=blob,
                          headers={"content-type": m["put_url"]["content-type"]})
                ids.append(m["object_id"])
        return ids

    def register(self, fid, ids, t0, durations, init=None):
        segs, t = [], t0
        for oid, d in zip(ids, durations):
            segs.append({"object_id": oid, "timerange": f"[{t // 10**9}:{t % 10**9}_{(t + d) // 10**9}:{(t + d) % 10**9})"})
            if init:
                segs[-1]["init_object_id"] = init
            t += d
        for i in range(0, len(segs), 5000):
            self.call("POST", f"/flows/{fid}/segments", segs[i:i + 5000])


def wrk(url, duration, connections, script=None, headers=()):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "transfer": f"{tr.group(1)}{tr.group(2)}/s", "p50": lat.get("50"),
            "p99": lat.get("99"), "non2xx": int(errors.group(1)) if errors else 0}


def make_segments(dir_, fmp4=False):
    """30 x 2 s MPEG-TS segments of a 2 Mbit/s 720p30 H.264 + AAC clip; with `fmp4`,
    fragmented MP4 segments (`.m4s`) and their init segment `init.mp4` instead."""
    ext = "m4s" if fmp4 else "ts"
    fmp4_args = ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"] if fmp4 else []
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", "60", "-c:v", "libx264", "-preset", "veryfast",
                    "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M", "-g", "60",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
                    "-f", "hls", "-hls_time", "2", "-hls_list_size", "0",
                    "-hls_segment_filename", os.path.join(dir_, f"s%03d.{ext}"), *fmp4_args,
                    os.path.join(dir_, "clip.m3u8")], check=True)
    return sorted(f for f in os.listdir(dir_) if f.endswith("." + ext))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drey", default="target/release/drey")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="drey-hls-bench-")
    procs = []
    try:
        port = free_port()
        drey = subprocess.Popen([a.drey, "serve", "--data-dir", os.path.join(work, "data"),
                                 "--http", f"127.0.0.1:{port}", "--rtmp", "off"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "drey.log"), "w"))
        procs.append(drey)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/service")
        api = Api(port)

        # 1. One hour of 2 s segments (small objects: the playlist is what is measured).
        hour = api.flow("bench-hour")
        ids = api.upload(hour, [b"\x47" + bytes(187)] * 1800)
        t0 = 1_900_000_000 * 10**9
        api.register(hour, ids, t0, [SEG_NS] * 1800)
        window = f"[{t0 // 10**9}:0_{t0 // 10**9 + 3600}:0)"
        pl_url = f"{base}/flows/{hour}/playlist.m3u8?timerange={window}"
        body = urllib.request.urlopen(pl_url).read()
        assert body.count(b"#EXTINF") == 1800, body[:400]
        etag = urllib.request.urlopen(pl_url).headers["etag"]
        results = {"playlist_bytes": len(body)}
        results["playlist_1h"] = wrk(pl_url, a.duration, a.connections)
        results["playlist_1h_304"] = wrk(pl_url, a.duration, a.connections,
                                         headers=[f"If-None-Match: {etag}"])
        # What players and CDNs ask for: gzip (compressed once per playlist build).
        results["playlist_1h_gzip"] = wrk(pl_url, a.duration, a.connections,
                                          headers=["Accept-Encoding: gzip"])
        # The same flow while ingesting: the live window (6 segments).
        f = json.loads(urllib.request.urlopen(f"{base}/flows/{hour}").read())
        f["status"] = "ingesting"
        api.call("PUT", f"/flows/{hour}", f)
        results["playlist_live"] = wrk(f"{base}/flows/{hour}/playlist.m3u8", a.duration, a.connections)

        # 2. Real segments: drey vs nginx on the same files.
        segdir = os.path.join(work, "segments")
        os.makedirs(segdir)
        names = make_segments(segdir)
        blobs = [open(os.path.join(segdir, n), "rb").read() for n in names]
        clip = api.flow("bench-clip")
        clip_ids = api.upload(clip, blobs)
        api.register(clip, clip_ids, t0, [SEG_NS] * len(clip_ids))
        nginx_root = os.path.join(work, "nginx-root")
        os.makedirs(nginx_root)
        for oid, n in zip(clip_ids, names):
            shutil.copy(os.path.join(segdir, n), os.path.join(nginx_root, oid))
        nport = free_port()
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as fh:
            user = "user root;\n" if os.geteuid() == 0 else ""
            fh.write(f"""{user}worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  default_type video/mp2t;
  client_body_temp_path {work}/nginx-tmp;
  proxy_temp_path {work}/nginx-tmp; fastcgi_temp_path {work}/nginx-tmp;
  uwsgi_temp_path {work}/nginx-tmp; scgi_temp_path {work}/nginx-tmp;
  server {{ listen 127.0.0.1:{nport}; root {nginx_root}; }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"])
        procs.append(nginx)
        wait_http(f"http://127.0.0.1:{nport}/{clip_ids[0]}")
        def lua(prefix):
            p = os.path.join(work, f"paths-{prefix.strip('/') or 'root'}.lua")
            with open(p, "w") as fh:
                fh.write("paths = {" + ",".join(f'"{prefix}{oid}"' for oid in clip_ids) + "}\n")
                fh.write("i = 0\nrequest = function()\n  i = i + 1\n"
                         "  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n")
            return p
        drey_lua, nginx_lua = lua("/media/"), lua("/")
        runs = {"drey": [], "nginx": []}
        for _ in range(2):
            runs["drey"].append(wrk(base, a.duration, a.connections, drey_lua))
            runs["nginx"].append(wrk(f"http://127.0.0.1:{nport}", a.duration, a.connections, nginx_lua))
        results["segments"] = runs
        best = {k: max(r["rps"] for r in v) for k, v in runs.items()}
        results["segment_ratio"] = best["drey"] / best["nginx"]
        results["segment_bytes_avg"] = sum(map(len, blobs)) // len(blobs)

        # 3. The cost of generating the hour from the index: the same data, cache off,
        #    one connection (every request builds the 1800-segment playlist).
        drey.send_signal(signal.SIGTERM)
        drey.wait(timeout=20)
        conf2 = os.path.join(work, "nocache.toml")
        with open(conf2, "w") as fh:
            fh.write("hls_cache_ms = 0\n")
        drey = subprocess.Popen([a.drey, "serve", "--data-dir", os.path.join(work, "data"),
                                 "--http", f"127.0.0.1:{port}", "--rtmp", "off", "--config", conf2],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "drey2.log"), "w"))
        procs.append(drey)
        wait_http(base + "/service")
        results["playlist_1h_uncached_c1"] = wrk(pl_url, a.duration, 1)
        print(json.dumps(results, indent=2))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
