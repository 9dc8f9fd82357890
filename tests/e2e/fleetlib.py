"""Helpers for the fleet end-to-end tests (test_fleet_*.py): simulators in their own processes
(so one can be killed and restarted on its port), a router started from a written config, its
/health and /load-stats read by server, slow requests run in threads, and bounded waits.
Everything listens on 127.0.0.1; only processes started here are stopped, by PID."""
import http.client
import json
import os
import signal
import socket
import tempfile
import threading
import time

import rtlib

MODEL = "sim-model"
_tmp = tempfile.TemporaryDirectory(prefix="rt-fleet-")


def wait_until(pred, timeout=5.0, step=0.05, what="condition"):
    """Polls pred() until it returns a true value (returned) or raises after <timeout> s."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, http.client.HTTPException) as e:
            last = e
        time.sleep(step)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def wait_healthy(port, n, timeout=15.0):
    """Waits until the router on <port> reports at least <n> healthy servers; returns /health."""
    own = getattr(rtlib, "wait_healthy", None)
    if own is not None:
        return own(port, n, timeout)
    return wait_until(lambda: (lambda b: b if b and b.get("healthy_servers", 0) >= n else None)(
        rtlib.get_json(port, "/health", timeout=2.0)[1]), timeout, 0.1,
        "%d healthy servers on router %d" % (n, port))


class Sim:
    """One simulated vLLM server in its own process."""

    def __init__(self, port=None, args=(), models=(MODEL,)):
        self.port = port or rtlib.free_port()
        self.args = list(args)
        for m in models:
            self.args += ["--model", m]
        self.proc = None
        self.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        # A port left by a killed instance may take a moment to be free again.
        deadline = time.time() + 10
        while True:
            self.proc = rtlib.start(["sim", "--host", "127.0.0.1", "--port", str(self.port)]
                                    + self.args, stderr=open(os.devnull, "w"))
            try:
                rtlib.wait_port(self.port, 10, self.proc)
                return
            except RuntimeError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def kill(self):
        """SIGKILL: the process vanishes mid-request, as a crashed server does."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def faults(self, **kw):
        status, _, _, raw = rtlib.post_json(self.port, "/sim/faults", kw, timeout=5.0)
        if status != 200:
            raise RuntimeError("POST /sim/faults %r -> %d %r" % (kw, status, raw))

    def state(self):
        return rtlib.get_json(self.port, "/sim/state", timeout=5.0)[1]


def toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (k, toml(x)) for k, x in v.items()) + " }"
    raise TypeError(repr(v))


# Short intervals so that failures show within a second or two.
BASE = {
    "config": {"health_check_interval": 0.5, "health_check_timeout": 1.5,
               "health_check_consecutive_failures": 2, "config_reload_interval": 0},
    "balancing": {"scrape_interval": 0.5},
}


class Router:
    """The router in front of <servers>: a list of (Sim or url, capacity) or dicts."""

    def __init__(self, servers, tables=None, workers=2, wait=True):
        self.port = rtlib.free_port()
        conf = {k: dict(v) for k, v in BASE.items()}
        for k, v in (tables or {}).items():
            conf.setdefault(k, {}).update(v)
        lines = ["[servers]", "servers = ["]
        for s in servers:
            if not isinstance(s, dict):
                target, cap = s
                s = {"url": target.url if isinstance(target, Sim) else target,
                     "max_concurrent_requests": cap}
            lines.append("    %s," % toml(s))
        lines.append("]")
        for name, keys in conf.items():
            lines.append("[%s]" % name)
            lines += ["%s = %s" % (k, toml(v)) for k, v in keys.items()]
        fd, self.config = tempfile.mkstemp(suffix=".toml", dir=_tmp.name)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = os.path.join(_tmp.name, "router-%d.log" % self.port)
        self.proc = rtlib.start(["run", "--port", str(self.port), "--host", "127.0.0.1",
                                 "--config", self.config, "--console", "--workers", str(workers)],
                                wait_ports=[self.port], stderr=open(self.log, "w"),
                                stdout=open(self.log, "a"))
        if wait:
            wait_healthy(self.port, len(servers), 15.0)

    def stop(self):
        rtlib.stop(self.proc)

    def log_tail(self, n=20):
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def health(self):
        return rtlib.get_json(self.port, "/health", timeout=5.0)

    def load_stats(self):
        return rtlib.get_json(self.port, "/load-stats", timeout=5.0)[1]

    def health_by_url(self):
        return {s["url"]: s for s in self.health()[1]["servers"]}

    def load_by_url(self):
        return {s["url"]: s for s in self.load_stats()["servers"]}

    def loads(self, sims):
        by = self.load_by_url()
        return [by[s.url]["current_load"] for s in sims]

    def wait_idle(self, timeout=5.0):
        """Waits until every server's current_load is 0 (the in-flight counts came back)."""
        return wait_until(lambda: all(s["current_load"] == 0
                                      for s in self.load_stats()["servers"]),
                          timeout, 0.05, "all current_load == 0 on %r" % (self.load_stats(),))


def completion(port, max_tokens=4, model=MODEL, headers=None, timeout=30.0, body=None,
               path="/v1/completions"):
    """A non-streamed completion; returns (status, headers lower-cased, parsed body or None)."""
    b = body if body is not None else {"model": model, "prompt": "hello", "max_tokens": max_tokens}
    status, hdrs, parsed, _ = rtlib.post_json(port, path, b, headers=headers, timeout=timeout)
    return status, hdrs, parsed


def upstream(hdrs):
    return hdrs.get("x-upstream-server")


def parallel(fn, n, stagger=0.0):
    """Runs fn(i) for i in 0..n-1 in threads started <stagger> s apart; returns the results in
    order (an exception becomes the result)."""
    out = [None] * n

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # reported as the result, checked by the test
            out[i] = e

    ts = []
    for i in range(n):
        t = threading.Thread(target=run, args=(i,), daemon=True)
        t.start()
        ts.append(t)
        if stagger:
            time.sleep(stagger)
    return ts, out


def join(ts, timeout=60.0):
    deadline = time.time() + timeout
    for t in ts:
        t.join(max(0.0, deadline - time.time()))
        if t.is_alive():
            raise AssertionError("a request thread did not finish within %.0fs" % timeout)


def stream_first_byte(port, max_tokens, model=MODEL, timeout=30.0, headers=None):
    """A streamed completion read to the end; returns (status, time of the first body byte,
    time of the end, upstream server)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"model": model, "prompt": "hello", "max_tokens": max_tokens,
                           "stream": True, "ignore_eos": True}).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request("POST", "/v1/completions", body=body, headers=h)
        r = conn.getresponse()
        first = r.read(1)
        t_first = time.time()
        rest = r.read()
        return r.status, t_first, time.time(), r.getheader("X-Upstream-Server"), first + rest
    finally:
        conn.close()


def open_stream(port, max_tokens, model=MODEL):
    """Starts a streamed completion and returns the raw socket after the response head and the
    first bytes arrived (the caller closes it to play a client that goes away)."""
    body = json.dumps({"model": model, "prompt": "hello", "max_tokens": max_tokens,
                       "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    got = b""
    while b"data:" not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return s, got


def check(cond, msg, *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)
