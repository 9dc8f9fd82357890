#!/usr/bin/env python3
"""Hot reload and graceful shutdown of `vllm-router run`: servers added to or removed from the
file, broken edits, SIGHUP, SIGTERM with streams in flight, and reloads under load."""
# ctest-timeout: 400
# ctest-labels: reload threads
import http.client
import json
import os
import signal
import tempfile
import threading
import time

import rtlib


def config_text(servers, interval=1, extra=""):
    entries = ",\n".join('  { url = "http://127.0.0.1:%d", max_concurrent_requests = %d }' % (p, c)
                         for p, c in servers)
    return ("[servers]\nservers = [\n%s\n]\n\n[config]\nhealth_check_interval = 0.5\n"
            "health_check_timeout = 1\nconfig_reload_interval = %s\nretry_delay = 0.05\n"
            "[timeouts]\ndrain = 20\n%s" % (entries, interval, extra))


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_stats(port):
    status, body = rtlib.get_json(port, "/load-stats")
    assert status == 200, status
    return {s["url"]: s for s in body["servers"]}


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, KeyError, AssertionError):
            pass
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def chat(port, stream=False, max_tokens=4, timeout=30):
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens, "stream": stream}
    return rtlib.request(port, "POST", "/v1/chat/completions", body=body, timeout=timeout)


class ReloadTest(rtlib.Case):
    def setup(self, servers, interval=1, extra=""):
        self.dir = tempfile.mkdtemp(prefix="rt-reload-")
        self.cfg = os.path.join(self.dir, "servers.toml")
        write_atomic(self.cfg, config_text(servers, interval, extra))
        self.port = rtlib.free_port()
        self.log = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.router = rtlib.start(["run", "--console", "--config", self.cfg, "--port",
                                   str(self.port), "--host", "127.0.0.1"],
                                  wait_ports=[self.port], cwd=self.dir, stderr=self.log)

    def stop_router(self):
        return rtlib.stop(self.router)

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def test_add_remove_broken_sighup(self):
        p1, p2 = rtlib.free_ports(2)
        sims = rtlib.start(["sim", "--ports", "%d:8,%d:8" % (p1, p2), "--model", "m1",
                            "--itl-ms", "30", "--output-len", "40"], wait_ports=[p1, p2])
        self.setup([(p1, 4)])
        u1, u2 = "http://127.0.0.1:%d" % p1, "http://127.0.0.1:%d" % p2
        wait_for(lambda: load_stats(self.port)[u1]["status"], 10, "first server healthy")

        # Added to the file: takes traffic within one reload interval (+ its first check).
        write_atomic(self.cfg, config_text([(p1, 4), (p2, 4)]))
        wait_for(lambda: u2 in load_stats(self.port) and load_stats(self.port)[u2]["status"],
                 5, "added server healthy")
        seen = set()
        for _ in range(12):
            status, hdrs, _ = chat(self.port)
            assert status == 200, status
            seen.add(hdrs.get("x-upstream-server"))
        assert seen == {u1, u2}, seen

        # Removed while a stream runs on it: the stream completes, then it gets nothing.
        results = {}

        def long_stream():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            body = json.dumps({"model": "m1", "messages": [{"role": "user", "content": "x"}],
                               "max_tokens": 40, "stream": True})
            conn.request("POST", "/v1/chat/completions", body=body,
                         headers={"Content-Type": "application/json", "X-Session-Id": "s"})
            r = conn.getresponse()
            results["server"] = r.getheader("X-Upstream-Server")
            results["body"] = r.read().decode()
            results["status"] = r.status
            conn.close()

        # Whichever server the stream landed on is the one removed from the file.
        t = threading.Thread(target=long_stream)
        t.start()
        time.sleep(0.3)
        victim = results.get("server")
        keep_port = p1 if victim == u2 else p2
        keep_url = "http://127.0.0.1:%d" % keep_port
        write_atomic(self.cfg, config_text([(keep_port, 4)]))
        wait_for(lambda: victim not in load_stats(self.port), 5, "removed server gone")
        t.join(30)
        assert results["status"] == 200, results
        assert "data: [DONE]" in results["body"], results["body"][-200:]
        assert '"error"' not in results["body"], results["body"][-300:]
        for _ in range(6):
            status, hdrs, _ = chat(self.port)
            assert status == 200
            assert hdrs.get("x-upstream-server") == keep_url, hdrs

        # A broken edit keeps the old configuration serving and is logged with its position.
        with open(self.cfg, "a") as f:
            f.write("\nbroken = [\n")
        wait_for(lambda: "reload failed" in self.stderr(), 5, "failed reload logged")
        assert "servers.toml:" in self.stderr(), self.stderr()[-500:]
        status, hdrs, _ = chat(self.port)
        assert status == 200 and hdrs.get("x-upstream-server") == keep_url

        # SIGHUP reloads at once (periodic checks would take a while: interval is long now).
        write_atomic(self.cfg, config_text([(p1, 4), (p2, 4)], interval=0))
        self.router.send_signal(signal.SIGHUP)
        wait_for(lambda: len(load_stats(self.port)) == 2, 5, "SIGHUP reload")
        assert self.stop_router() == 0
        rtlib.stop(sims)

    def test_sigterm_drains_streams(self):
        p1 = rtlib.free_port()
        sims = rtlib.start(["sim", "--ports", "%d:64" % p1, "--model", "m1", "--itl-ms", "50",
                            "--output-len", "30"], wait_ports=[p1])
        self.setup([(p1, 64)])
        u1 = "http://127.0.0.1:%d" % p1
        wait_for(lambda: load_stats(self.port)[u1]["status"], 10, "server healthy")
        results = []
        lock = threading.Lock()

        def stream():
            try:
                status, _, data = chat(self.port, stream=True, max_tokens=30, timeout=40)
                ok = status == 200 and b"data: [DONE]" in data and b'"error"' not in data
            except OSError as e:
                ok = False
            with lock:
                results.append(ok)

        threads = [threading.Thread(target=stream) for _ in range(50)]
        for t in threads:
            t.start()
        wait_for(lambda: load_stats(self.port)[u1]["current_load"] >= 50, 10, "50 in flight")
        self.router.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # New connections are refused while the streams finish.
        try:
            refused = False
            rtlib.request(self.port, "GET", "/livez", timeout=2)
        except OSError:
            refused = True
        for t in threads:
            t.join(40)
        assert self.router.wait(20) == 0
        assert refused, "the router still accepted connections while draining"
        assert len(results) == 50 and all(results), "%d of %d streams completed" % (
            sum(results), len(results))
        rtlib.stop(sims)

    def test_reload_every_second_under_load(self):
        p1, p2 = rtlib.free_ports(2)
        sims = rtlib.start(["sim", "--ports", "%d:16,%d:16" % (p1, p2), "--model", "m1",
                            "--itl-ms", "5", "--output-len", "8"], wait_ports=[p1, p2])
        self.setup([(p1, 8), (p2, 8)])
        wait_for(lambda: all(s["status"] for s in load_stats(self.port).values()), 10,
                 "servers healthy")
        # A minute as the issue asks; shorter under ThreadSanitizer, which is ~10x slower.
        default = "20" if "thread" in os.environ.get("RT_SANITIZER", "") else "60"
        duration = float(os.environ.get("RT_RELOAD_SOAK_SECONDS", default))
        stop_at = time.time() + duration
        failures = []
        counts = [0]
        lock = threading.Lock()

        def client(i):
            while time.time() < stop_at:
                try:
                    status, _, data = chat(self.port, stream=(i % 2 == 0), timeout=20)
                    ok = status == 200 and (i % 2 == 1 or b"[DONE]" in data)
                except OSError as e:
                    ok, status, data = False, str(e), b""
                with lock:
                    counts[0] += 1
                    if not ok:
                        failures.append((status, data[-200:] if isinstance(status, int) else ""))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        n = 0
        while time.time() < stop_at:
            # Alternate capacities and the policy: every reload changes something.
            cap = 6 + n % 3
            policy = ["load_score", "round_robin", "least_inflight"][n % 3]
            write_atomic(self.cfg, config_text([(p1, cap), (p2, cap)],
                                               extra="[balancing]\npolicy = \"%s\"\n" % policy))
            self.router.send_signal(signal.SIGHUP)
            n += 1
            time.sleep(1)
        for t in threads:
            t.join(30)
        assert counts[0] > 100, counts
        assert not failures, "%d of %d requests failed: %s" % (len(failures), counts[0],
                                                               failures[:5])
        assert self.stop_router() == 0
        rtlib.stop(sims)


if __name__ == "__main__":
    ReloadTest().run()
