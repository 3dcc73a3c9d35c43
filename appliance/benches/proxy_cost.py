#!/usr/bin/python3
"""What one routed connection costs: nodus (splice route) against HAProxy.

Why connections/s differs from HAProxy's: the same number of short
connections go through each proxy (a real ClientHello made by Python's ssl
module, an 8-byte request, a 64-byte answer from a local backend, close),
and each proxy's cost is divided by the connections:
- CPU: user and kernel time the process spent (/proc/PID/stat), with two
  client threads driving it, over several rounds;
- syscalls: a second pass under `strace -c -f`; strace slows both alike,
  the counts, not the times, are the result.
Analysis, not a benchmark: `make bench` measures the rates.

Usage (root, after `make build`):
    appliance/benches/proxy_cost.py [connections] [rounds]
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

CONNECTIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODUS = os.path.join(ROOT, "target", "release", "nodus")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_hello(name):
    """The first flight of a TLS client for `name`, without a server."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def backend(listener):
    """Answers each connection's 8-byte request with 64 bytes, then closes."""
    def serve(conn):
        with conn:
            # The hello comes first (it is relayed), then the request.
            got = b""
            while not got.endswith(b"REQUEST!"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                got += chunk
            conn.sendall(b"a" * 64)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def wait_listening(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def drive(port, hello, n):
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(hello + b"REQUEST!")
            got = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                got += chunk
            assert len(got) == 64, len(got)


def cpu_ms(pid):
    """User and kernel CPU time of `pid` (all threads), in milliseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    return int(fields[11]) * tick_ms, int(fields[12]) * tick_ms


def cpu_per_connection(pid, port, hello, n):
    """(user, kernel) milliseconds of CPU `pid` spent per connection while
    two client threads drove n connections through it."""
    user0, kernel0 = cpu_ms(pid)
    clients = [threading.Thread(target=drive, args=(port, hello, n // 2))
               for _ in range(2)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    user1, kernel1 = cpu_ms(pid)
    done = n // 2 * 2
    return (user1 - user0) / done, (kernel1 - kernel0) / done


def count(pid, port, hello, n, out):
    """Syscalls `pid` (all threads) made while n connections went through,
    and how long that took."""
    trace = subprocess.Popen(
        ["strace", "-c", "-f", "-o", out, "-p", str(pid)],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    started = time.monotonic()
    if n:
        drive(port, hello, n)
    else:
        time.sleep(5.0)
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    trace.send_signal(signal.SIGINT)
    trace.wait()
    total, calls = 0, {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[3].isdigit():
                name = parts[-1]
                if name != "total":
                    calls[name] = int(parts[3])
                    total += int(parts[3])
    return total, calls, elapsed


def main():
    work = tempfile.mkdtemp(prefix="nodus-syscalls-")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    threading.Thread(target=backend, args=(listener,), daemon=True).start()
    back = listener.getsockname()[1]
    hello = client_hello("splice.test")

    nodus_port, haproxy_port = free_port(), free_port()
    conf = os.path.join(work, "nodus.toml")
    with open(conf, "w") as f:
        f.write(
            f'[proxy]\nlisten = "127.0.0.1:{nodus_port}"\ncheck_interval_ms = 0\n'
            f'[[proxy.route]]\nname = "splice"\nserver_names = ["splice.test"]\n'
            f'backends = ["127.0.0.1:{back}"]\n'
            # Only the proxy: the other components' own syscalls would
            # count too.
            f'[fleet]\nenabled = false\n[fileserver]\nenabled = false\n'
            f'[proccache]\nenabled = false\n[pagecache]\nenabled = false\n'
        )
    hconf = os.path.join(work, "haproxy.cfg")
    with open(hconf, "w") as f:
        f.write(
            "global\n  maxconn 5000\n  nbthread 2\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
            "  timeout server 30s\n  option splice-auto\n"
            f"frontend sni\n  bind 127.0.0.1:{haproxy_port}\n  tcp-request inspect-delay 5s\n"
            "  tcp-request content accept if { req.ssl_hello_type 1 }\n"
            "  use_backend b if { req.ssl_sni -i splice.test }\n"
            f"backend b\n  server b1 127.0.0.1:{back}\n"
        )
    nodus = subprocess.Popen([NODUS, "run", "--config", conf],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    haproxy = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", hconf],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(nodus_port)
        wait_listening(haproxy_port)
        drive(nodus_port, hello, 50)  # warm both up
        drive(haproxy_port, hello, 50)
        cpu = {"nodus": [], "haproxy": []}
        for _ in range(ROUNDS):
            for name, pid, port in (("nodus", nodus.pid, nodus_port),
                                    ("haproxy", haproxy.pid, haproxy_port)):
                cpu[name].append(cpu_per_connection(pid, port, hello, CONNECTIONS))
        print(f"{CONNECTIONS} connections x {ROUNDS} rounds, CPU ms per connection "
              "(median of rounds; user + kernel):")
        for name, rounds in cpu.items():
            totals = sorted(u + k for u, k in rounds)
            user = sorted(u for u, _ in rounds)[len(rounds) // 2]
            kernel = sorted(k for _, k in rounds)[len(rounds) // 2]
            print(f"  {name:8} {totals[len(totals) // 2]:.3f} "
                  f"(rounds {totals[0]:.3f}-{totals[-1]:.3f}; "
                  f"user {user:.3f}, kernel {kernel:.3f})")
        rows = []
        for name, pid, port in (("nodus", nodus.pid, nodus_port),
                                ("haproxy", haproxy.pid, haproxy_port)):
            idle, _, idle_s = count(pid, port, hello, 0,
                                    os.path.join(work, f"{name}-idle.strace"))
            total, calls, busy_s = count(pid, port, hello, CONNECTIONS,
                                         os.path.join(work, f"{name}.strace"))
            # What the process does anyway (timers, heartbeats) over the
            # same time is not the connections' cost.
            background = idle / (idle_s + 1.5) * (busy_s + 1.5)
            rows.append((name, total - background, calls, background))
        print(f"{CONNECTIONS} connections, syscalls per connection:")
        for name, total, calls, background in rows:
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:10]
            print(f"  {name:8} {total / CONNECTIONS:6.1f} "
                  f"(background {background:.0f} subtracted)  " +
                  ", ".join(f"{k} {v / CONNECTIONS:.1f}" for k, v in top))
    finally:
        for p in (nodus, haproxy):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
