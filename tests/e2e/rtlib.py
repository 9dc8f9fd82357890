"""Shared helpers for end-to-end tests: free ports, starting and stopping our own processes,
small HTTP/1.1 requests over 127.0.0.1. Only processes a test started are ever stopped, by PID."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

BIN = os.environ.get("RT_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "vllm-router"))
SOURCE_DIR = os.environ.get("RT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED_DIR = os.environ.get("RT_SHARED_DIR", os.path.join(SOURCE_DIR, "..", "shared"))
SKIP = 77  # CTest SKIP_RETURN_CODE

_procs = []


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(SKIP)


def shared_path(*parts):
    """Path under ../shared, or None when that folder is absent."""
    p = os.path.join(SHARED_DIR, *parts)
    return p if os.path.exists(p) else None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct free ports (held open together so they differ)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on port %d after %.1fs" % (port, timeout))


def start(args, wait_ports=(), env=None, cwd=None, stdout=None, stderr=None, timeout=15.0):
    """Starts BIN with args; waits until each port in wait_ports accepts connections."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen([BIN] + list(args), env=full_env, cwd=cwd,
                         stdout=stdout if stdout is not None else subprocess.DEVNULL,
                         stderr=stderr if stderr is not None else None)
    _procs.append(p)
    for port in wait_ports:
        wait_port(port, timeout, p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=15.0):
    """Stops a process this test started; returns its exit code."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def stop_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def request(port, method, path, body=None, headers=None, timeout=30.0):
    """One request on a fresh connection; returns (status, headers dict lower-cased, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def get_json(port, path, timeout=30.0):
    status, _, data = request(port, "GET", path, timeout=timeout)
    return status, json.loads(data) if data else None


def post_json(port, path, obj, headers=None, timeout=30.0):
    status, hdrs, data = request(port, "POST", path, body=obj, headers=headers, timeout=timeout)
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return status, hdrs, parsed, data


def sse_events(data):
    """Splits an SSE body into the payloads of its 'data:' lines."""
    out = []
    for block in data.decode().split("\n\n"):
        block = block.strip("\n")
        if not block:
            continue
        for line in block.split("\n"):
            if line.startswith("data: "):
                out.append(line[6:])
    return out


class Case:
    """Minimal runner: methods named test_* run in order; prints 'N passed, N failed'."""

    def run(self):
        names = [n for n in sorted(dir(self)) if n.startswith("test_")]
        passed = failed = 0
        try:
            for n in names:
                t0 = time.time()
                try:
                    getattr(self, n)()
                    passed += 1
                    print("ok   %s (%.2fs)" % (n, time.time() - t0), flush=True)
                except Exception as e:  # report and go on with the next case
                    failed += 1
                    import traceback
                    traceback.print_exc()
                    print("FAIL %s: %s" % (n, e), flush=True)
        finally:
            if hasattr(self, "teardown"):
                self.teardown()
            stop_all()
        print("%d passed, %d failed" % (passed, failed))
        sys.exit(1 if failed else 0)
