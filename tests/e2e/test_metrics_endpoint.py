#!/usr/bin/env python3
"""GET /metrics of a busy router: valid Prometheus text (promtool), counters that add up."""
# ctest-timeout: 120
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import rtlib


class MetricsTest(rtlib.Case):
    def test_busy_router_metrics(self):
        p1, p2 = rtlib.free_ports(2)
        sims = rtlib.start(["sim", "--ports", "%d:8,%d:8" % (p1, p2), "--model", "m1",
                            "--itl-ms", "2", "--output-len", "4"], wait_ports=[p1, p2])
        port = rtlib.free_port()
        d = tempfile.mkdtemp(prefix="rt-metrics-")
        router = rtlib.start(["run", "--console", "--host", "127.0.0.1", "--port", str(port),
                              "--server", "http://127.0.0.1:%d=4" % p1,
                              "--server", "http://127.0.0.1:%d=4" % p2],
                             wait_ports=[port], cwd=d)
        deadline = time.time() + 10
        while time.time() < deadline:
            st, body = rtlib.get_json(port, "/health")
            if body and body.get("healthy_servers") == 2:
                break
            time.sleep(0.1)
        stop = time.time() + 3
        counts = {"ok": 0}
        lock = threading.Lock()

        def client(i):
            while time.time() < stop:
                body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}],
                        "stream": i % 2 == 0, "max_tokens": 4}
                st, _, _ = rtlib.request(port, "POST", "/v1/chat/completions", body=body)
                with lock:
                    counts["ok"] += st == 200

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        st, hdrs, busy_page = rtlib.request(port, "GET", "/metrics")
        assert st == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4")
        for t in threads:
            t.join()
        # One request the router answers itself.
        rtlib.request(port, "POST", "/v1/chat/completions", body={"model": "nope"})
        st, _, page = rtlib.request(port, "GET", "/metrics")
        text = page.decode()
        served = sum(float(v) for v in re.findall(
            r'^vllm_router_requests_total\{server="http[^"]*",[^}]*status="200"\} (\S+)$', text, re.M))
        assert served == counts["ok"], (served, counts)
        assert re.search(r'^vllm_router_requests_total\{server="",model="nope",'
                         r'endpoint="/v1/chat/completions",status="404"\} 1$', text, re.M), text[:2000]
        assert re.search(r'^vllm_router_backend_capacity\{server="http://127.0.0.1:%d"\} 4$' % p1,
                         text, re.M)
        assert re.search(r'^vllm_router_backend_inflight\{server="http://127.0.0.1:%d"\} 0$' % p1,
                         text, re.M)
        assert "vllm_router_time_to_first_byte_seconds_bucket" in text
        promtool = shutil.which("promtool")
        if promtool is None:
            print("promtool not installed: skipping its check")
        else:
            for name, data in (("busy", busy_page), ("final", page)):
                path = os.path.join(d, name + ".prom")
                with open(path, "wb") as f:
                    f.write(data)
                with open(path, "rb") as f:
                    r = subprocess.run([promtool, "check", "metrics"], stdin=f,
                                       capture_output=True)
                assert r.returncode == 0, (name, r.returncode, r.stdout, r.stderr)
        assert rtlib.stop(router) == 0
        rtlib.stop(sims)


if __name__ == "__main__":
    MetricsTest().run()
