#!/usr/bin/env python3
"""User-space instructions per request, counted by valgrind (callgrind):
an A/B of two Sluice builds that the machine's noise cannot move.

The load bench times requests per CPU-second, and on a shared VM those
figures move by 20-45 % from round to round. Instructions do not: the same
build serving the same requests counts the same within 0.1 %. So a change
to the proxy's user-space work is judged here first, then confirmed in
time by `loadbench.py`.

Each peer is started under callgrind (one worker), serves N1 and then N2
requests from h2load in two separate runs, and is stopped; the
instructions per request are (Ir(N2) - Ir(N1)) / (N2 - N1), which takes
out start-up, certificate loading and shutdown. What it does not count:
the kernel (syscalls, TCP), and cycles lost to cache misses or stalls;
those are still the load bench's to show.

    python3 benches/load/instructions.py                  # HTTP/2 over TLS, this build
    python3 benches/load/instructions.py --compare OLD    # and another build
    python3 benches/load/instructions.py --nginx          # and nginx, same load
    python3 benches/load/instructions.py --http1          # HTTP/1.1 keep-alive, plain
    python3 benches/load/instructions.py --args=--no-fast-path --compare target/release/sluice
                                                          # one build, two ways of serving

Backends are the load bench's (nginx answering 100 bytes) on 127.0.0.1.
Needs valgrind, nginx, h2load (nghttp2-client) and openssl.
"""

import argparse
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadbench as lb  # noqa: E402

PORT, TLS_PORT, ADMIN = 9280, 9281, "127.0.0.1:9290"


def sluice_cmd(binary, http1):
    cmd = [str(binary), "serve", "--admin", ADMIN, "--strategy", "round-robin", "--workers", "1",
           "--listen", f"127.0.0.1:{PORT}", "--access-log", "off"]
    if not http1:
        cmd += ["--listen-tls", f"127.0.0.1:{TLS_PORT}", "--tls-cert", str(lb.TLS["cert"]),
                "--tls-key", str(lb.TLS["key"])]
    for b in lb.BACKENDS:
        cmd += ["--backend", f"127.0.0.1:{b}"]
    return cmd


def nginx_cmd(run_dir, http1):
    port = PORT if http1 else TLS_PORT
    lb.H2["on"] = not http1
    lb.TLS["on"] = not http1
    conf = lb.render("nginx.conf", run_dir, port)
    # One process: callgrind then counts the worker itself.
    return ["nginx", "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "nginx.err"),
            "-g", "master_process off;"]


def load(n, http1):
    """N requests; returns the failures h2load counted."""
    if http1:
        cmd = ["h2load", "-n", str(n), "-c", "4", "-m", "1", "-t", "1", "--h1", f"http://127.0.0.1:{PORT}/"]
    else:
        cmd = ["h2load", "-n", str(n), "-c", "2", "-m", "50", "-t", "1", "--npn-list=h2",
               f"https://127.0.0.1:{TLS_PORT}/"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    if not m or int(m.group(1)) != n:
        raise SystemExit(f"h2load did not finish its {n} requests:\n{out}")
    return n


def count(name, cmd, n, http1, run_dir):
    """Instructions (Ir) the process ran, start to exit, serving n requests."""
    out = run_dir / f"callgrind.{name}.{n}"
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                            stdout=open(run_dir / f"{name}.{n}.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=run_dir, env={**lb.os.environ, "RUST_LOG": "warn"})
    port = PORT if http1 else TLS_PORT
    deadline = time.time() + 120
    while not lb.port_open(port):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"{name} did not start: see {run_dir / f'{name}.{n}.log'}")
        time.sleep(0.2)
    load(n, http1)
    proc.send_signal(signal.SIGTERM if name != "nginx" else signal.SIGQUIT)
    proc.wait(timeout=120)
    text = out.read_text(errors="replace")
    m = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
    if not m:
        raise SystemExit(f"no totals in {out}")
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compare", type=Path, metavar="SLUICE_BINARY", help="another build, counted beside")
    ap.add_argument("--binary", type=Path, default=lb.ROOT / "target" / "release" / "sluice")
    ap.add_argument("--nginx", action="store_true", help="count nginx too (one worker, same load)")
    ap.add_argument("--http1", action="store_true", help="plain HTTP/1.1 keep-alive instead of h2 over TLS")
    ap.add_argument("--args", default="", metavar="FLAGS",
                    help="more flags for --binary alone (say --http2-fast-path, against --compare the same binary)")
    ap.add_argument("--compare-args", default="", metavar="FLAGS", help="more flags for --compare alone")
    ap.add_argument("--n1", type=int, default=2000)
    ap.add_argument("--n2", type=int, default=22000)
    args = ap.parse_args()
    for tool in ("valgrind", "nginx", "h2load", "openssl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install valgrind nginx nghttp2-client openssl)")
    for port in lb.BACKENDS + [PORT, TLS_PORT]:
        if lb.port_open(port):
            raise SystemExit(f"port {port} is already in use")
    run_dir = lb.CACHE / "run" / ("instructions-" + time.strftime("%Y%m%d-%H%M%S"))
    run_dir.mkdir(parents=True)
    lb.make_cert(run_dir)
    lb.atexit.register(lb.stop_all)
    for b in lb.BACKENDS:
        lb.start(f"backend-{b}", ["nginx", "-p", str(run_dir), "-c",
                                  str(lb.render("backend.nginx.conf", run_dir, b))], lb.LOAD_CPU, run_dir)
    for b in lb.BACKENDS:
        if not lb.wait_200(b):
            raise SystemExit(f"backend {b} did not start")
    peers = [("sluice", sluice_cmd(args.binary, args.http1) + args.args.split())]
    if args.compare:
        peers.append(("sluice-b", sluice_cmd(args.compare, args.http1) + args.compare_args.split()))
    if args.nginx:
        peers.append(("nginx", nginx_cmd(run_dir, args.http1)))
    what = "HTTP/1.1 keep-alive" if args.http1 else "HTTP/2 over TLS (2 connections, 50 streams each)"
    print(f"## User-space instructions per request, {what}: (Ir({args.n2}) - Ir({args.n1})) / {args.n2 - args.n1}\n")
    print("| peer | Ir, N1 | Ir, N2 | instructions per request |")
    print("|---|---:|---:|---:|")
    per = {}
    for name, cmd in peers:
        a = count(name, cmd, args.n1, args.http1, run_dir)
        b = count(name, cmd, args.n2, args.http1, run_dir)
        per[name] = (b - a) / (args.n2 - args.n1)
        print(f"| {name} | {a:,} | {b:,} | **{per[name]:,.0f}** |", flush=True)
    if "sluice-b" in per:
        print(f"\nsluice ÷ sluice-b: ×{per['sluice'] / per['sluice-b']:.3f} the instructions")
    if "nginx" in per:
        print(f"sluice ÷ nginx: ×{per['sluice'] / per['nginx']:.3f} the instructions")
    print(f"\ncallgrind files (callgrind_annotate them): {run_dir}")


if __name__ == "__main__":
    main()
