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


def _die_with_parent():
    """In the child before exec: be killed when the test process dies (a timed-out test must
    not leave servers behind)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start(args, wait_ports=(), env=None, cwd=None, stdout=None, stderr=None, timeout=15.0):
    """Starts BIN with args; waits until each port in wait_ports accepts connections."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen([BIN] + list(args), env=full_env, cwd=cwd,
                         stdout=stdout if stdout is not None else subprocess.DEVNULL,
                         stderr=stderr if stderr is not None else None,
                         preexec_fn=_die_with_parent)
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
        # A timeout's SIGTERM still runs the cleanup below.
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
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


# ---- router and simulator helpers -------------------------------------------------------------

import tempfile  # noqa: E402

_tmpdirs = []


def tmpdir():
    """A temporary directory removed when the interpreter exits."""
    d = tempfile.TemporaryDirectory(prefix="rt-e2e-")
    _tmpdirs.append(d)
    return d.name


def start_sim(ports, args=(), timeout=15.0):
    """Starts one simulator process serving <ports> (an int or a list); returns the process."""
    if isinstance(ports, int):
        ports = [ports]
    p = start(["sim", "--host", "127.0.0.1", "--ports", ",".join(str(x) for x in ports)] + list(args),
              wait_ports=ports, timeout=timeout)
    return p


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (k, toml_value(x)) for k, x in v.items()) + " }"
    raise TypeError("no TOML form for %r" % (v,))


def write_config(tables, servers=None):
    """Writes a TOML config: <tables> maps a table name to a dict of keys; <servers> is a list of
    dicts (url, max_concurrent_requests, api_key, ...). Returns the file's path."""
    lines = []
    if servers is not None:
        lines.append("[servers]")
        lines.append("servers = [")
        for s in servers:
            lines.append("    %s," % toml_value(s))
        lines.append("]")
    for name, keys in (tables or {}).items():
        lines.append("[%s]" % name)
        for k, v in keys.items():
            lines.append("%s = %s" % (k, toml_value(v)))
    path = os.path.join(tmpdir(), "router.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# Quick health checks and no scraping surprises unless a test says otherwise.
FAST_CONFIG = {
    "config": {"health_check_interval": 0.5, "health_check_timeout": 1.0,
               "config_reload_interval": 0},
}


def merge_tables(base, extra):
    out = {k: dict(v) for k, v in base.items()}
    for k, v in (extra or {}).items():
        out.setdefault(k, {}).update(v)
    return out


def start_router(servers, tables=None, workers=1, port=None, args=(), wait=True, log=None):
    """Starts `run` in front of <servers> (list of ports, URLs or dicts) with FAST_CONFIG merged
    with <tables>; waits until the port listens and, when <wait>, until every server is healthy.
    Returns (process, port)."""
    port = port or free_port()
    entries = []
    for s in servers:
        if isinstance(s, int):
            s = {"url": "http://127.0.0.1:%d" % s}
        elif isinstance(s, str):
            s = {"url": s}
        s = dict(s)
        s.setdefault("max_concurrent_requests", 64)
        entries.append(s)
    path = write_config(merge_tables(FAST_CONFIG, tables), entries)
    log = log or os.path.join(tmpdir(), "router.log")
    out = open(log, "w")
    p = start(["run", "--config", path, "--host", "127.0.0.1", "--port", str(port), "--console",
               "--workers", str(workers)] + list(args),
              wait_ports=[port], stdout=out, stderr=out)
    p.log_path = log
    if wait and servers:
        wait_healthy(port, len(servers))
    return p, port


def wait_healthy(port, n, timeout=15.0):
    """Waits until the router on <port> reports at least <n> healthy servers; returns /health."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            status, body = get_json(port, "/health", timeout=2.0)
            last = body
            if body and body.get("healthy_servers", 0) >= n:
                return body
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise RuntimeError("router on %d: fewer than %d healthy servers after %.1fs: %r"
                       % (port, n, timeout, last))


def sim_state(port):
    return get_json(port, "/sim/state", timeout=5.0)[1]


def sim_faults(port, **faults):
    """Sets simulator faults at run time, e.g. sim_faults(p, busy=503) or hang=True."""
    status, _, body, raw_body = post_json(port, "/sim/faults", faults, timeout=5.0)
    if status != 200:
        raise RuntimeError("POST /sim/faults -> %d %r" % (status, raw_body))
    return body


def wait_for(pred, timeout=5.0, step=0.02):
    """Polls <pred> until it returns a true value; returns it, or the last false one."""
    deadline = time.time() + timeout
    v = pred()
    while not v and time.time() < deadline:
        time.sleep(step)
        v = pred()
    return v


def chat_body(model="sim-model", stream=False, max_tokens=None, content="hello"):
    b = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    if max_tokens is not None:
        b["max_tokens"] = max_tokens
    return b


def is_openai_error(obj):
    """True when <obj> is {"error": {"message": str, "type": str, "param": ..., "code": ...}}."""
    if not isinstance(obj, dict) or not isinstance(obj.get("error"), dict):
        return False
    e = obj["error"]
    return (isinstance(e.get("message"), str) and isinstance(e.get("type"), str)
            and "param" in e and "code" in e)


def raw_exchange(port, data, timeout=3.0, half_close=False, chunks=None, delay=0.0):
    """Sends <data> (or each of <chunks>, <delay> apart) on a fresh socket and reads until the
    peer closes or <timeout>. Returns (bytes read, closed: bool)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        for i, part in enumerate(chunks if chunks is not None else [data]):
            if i and delay:
                time.sleep(delay)
            try:
                s.sendall(part)
            except OSError:
                break
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        closed = False
        deadline = time.time() + timeout
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not d:
                closed = True
                break
            out += d
        return out, closed
    finally:
        s.close()


def status_of(raw):
    """Status code of the first response in raw bytes, or None."""
    try:
        line = raw.split(b"\r\n", 1)[0].decode("latin-1")
        return int(line.split(" ")[1]) if line.startswith("HTTP/1.") else None
    except (IndexError, ValueError):
        return None


def body_of(raw):
    """The body of the first response in raw bytes (after the blank line; not de-chunked)."""
    i = raw.find(b"\r\n\r\n")
    return raw[i + 4:] if i >= 0 else b""


def rss_kib(pid):
    """Resident set size of <pid> in KiB (VmRSS in /proc/<pid>/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def log_tail(p, n=30):
    """The last <n> lines of a router's log (start_router), for failure messages."""
    try:
        with open(p.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except (AttributeError, OSError):
        return ""


# ---- a tiny upstream in the test process -----------------------------------------------------

import http.server  # noqa: E402
import threading  # noqa: E402


class EchoUpstream:
    """An OpenAI-ish upstream on 127.0.0.1 that answers /health and /v1/models and echoes every
    other request as JSON {"method", "path", "headers": [[name, value]...], "body"}. Idle
    keep-alive connections are closed after <idle_close> seconds (vLLM does it after 5).
    Counts requests (self.requests) and accepted connections (self.connections); self.status
    (200) is the status of the echo, so a test can make it answer 502, 504, ..."""

    def __init__(self, model="echo-model", idle_close=30.0, extra_headers=()):
        self.model = model
        self.status = 200
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        up = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_close

            def setup(self):
                super().setup()
                with up.lock:
                    up.connections += 1

            def log_message(self, *a):
                pass

            def _send(self, code, obj, hdrs=()):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in hdrs:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if self.path == "/health":
                    return self._send(200, {"status": "ok"})
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [
                        {"id": up.model, "object": "model", "owned_by": "test"}]})
                if self.path == "/metrics":
                    return self._send(404, {"detail": "Not Found"})
                rec = {"method": self.command, "path": self.path,
                       "headers": [[k, v] for k, v in self.headers.items()],
                       "body": body.decode("utf-8", "replace")}
                with up.lock:
                    up.requests.append(rec)
                self._send(up.status, rec, extra_headers)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def header_values(rec, name):
    """Values of header <name> (case-insensitive) in an EchoUpstream record."""
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


# ---- streamed responses over a raw socket ----------------------------------------------------

class RawStream:
    """One request on a raw socket whose response is read incrementally: head first, then the
    body de-chunked, SSE event by event with arrival times. Lets a test stop reading (slow
    reader) or close mid-stream (client gone)."""

    def __init__(self, port, path, body, headers=None, timeout=10.0, rcvbuf=None,
                 version="1.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        head = "POST %s HTTP/%s\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" \
               "Content-Length: %d\r\n" % (path, version, len(data))
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        self.t0 = time.time()
        self.sock.sendall(head.encode() + b"\r\n" + data)
        self.buf = b""
        self.body = b""      # de-chunked body bytes not yet split into events
        self.nbody = 0       # de-chunked body bytes so far
        self.ready = []      # events split off the body, not yet handed out
        self.ended = False   # the last chunk (or close for close-delimited) arrived
        self.status = None
        self.headers = {}
        self.chunked = False
        self._read_head()

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.length = int(self.headers["content-length"]) if "content-length" in self.headers else None

    def _decode(self):
        """Moves complete chunks from buf to body; returns False when more input is needed."""
        if not self.chunked:
            got = len(self.buf)
            self.body += self.buf
            self.nbody += got
            self.buf = b""
            if self.length is not None and self.nbody >= self.length:
                self.ended = True
            return got > 0 or self.ended
        progressed = False
        buf, pos, pieces = self.buf, 0, []
        while True:
            i = buf.find(b"\r\n", pos)
            if i < 0:
                break
            size = int(buf[pos:i].split(b";")[0], 16)
            if size == 0:
                if buf[i + 2:i + 4] == b"\r\n":
                    self.ended = True
                    pos = i + 4
                    progressed = True
                break
            if len(buf) < i + 2 + size + 2:
                break
            assert buf[i + 2 + size:i + 4 + size] == b"\r\n", buf[pos:i + 8 + size]
            pieces.append(buf[i + 2:i + 2 + size])
            pos = i + 4 + size
            progressed = True
        self.buf = buf[pos:]
        piece = b"".join(pieces)
        self.body += piece
        self.nbody += len(piece)
        return progressed

    def events(self):
        """Yields (seconds since the request was sent, payload of a 'data:' line) as they
        arrive, until the body ends; raises EOFError if the connection closes before that."""
        while True:
            if b"\n\n" in self.body:
                blocks = self.body.split(b"\n\n")
                self.body = blocks.pop()
                now = time.time() - self.t0
                for block in blocks:
                    for line in block.decode().split("\n"):
                        if line.startswith("data: "):
                            self.ready.append((now, line[6:]))
            while self.ready:  # kept here so a caller may stop and call events() again
                yield self.ready.pop(0)
            if self.ended:
                return
            if not self._decode():
                try:
                    self._fill()
                except EOFError:
                    if not self.chunked and self.length is None:
                        self.ended = True
                        continue
                    raise

    def close(self):
        self.sock.close()


# ---- the official OpenAI Node SDK ------------------------------------------------------------

OPENAI_NODE_SDK = "openai@6"


def install_openai_node_sdk():
    """Installs the OpenAI Node SDK once into <build dir>/node-sdk with npm (reused by later
    runs); returns that directory. Skips the test when node/npm or the registry is missing."""
    import shutil
    if not shutil.which("node") or not shutil.which("npm"):
        skip("node or npm is not installed")
    build = os.environ.get("RT_BUILD_DIR") or os.path.dirname(os.path.abspath(BIN))
    d = os.path.join(build, "node-sdk")
    if os.path.exists(os.path.join(d, "node_modules", "openai", "package.json")):
        return d
    os.makedirs(d, exist_ok=True)
    try:
        r = subprocess.run(["npm", "install", "--prefix", d, OPENAI_NODE_SDK, "--no-audit",
                            "--no-fund", "--no-save", "--loglevel=error"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
    except subprocess.TimeoutExpired:
        skip("npm install %s timed out (registry unreachable?)" % OPENAI_NODE_SDK)
    if r.returncode != 0 or not os.path.exists(os.path.join(d, "node_modules", "openai")):
        skip("npm install %s failed (registry unreachable?): %s"
             % (OPENAI_NODE_SDK, r.stdout.decode(errors="replace")[-500:]))
    return d
