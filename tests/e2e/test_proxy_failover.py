# Failures and time limits through the router: retries before the first byte (busy answers,
# refused connections), what is never retried, no server left, stale pooled connections, every
# timeout (connect, first byte, stream idle, client head, client body, keep-alive idle), and 500
# concurrent requests with none lost.
# ctest-timeout: 150
# ctest-labels: proxy
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402
from rtlib import sim_state, sim_faults, post_json, is_openai_error  # noqa: E402

TIMEOUTS = {"connect": 0.5, "stream_idle": 0.5, "client_header": 0.5, "client_body": 0.5,
            "client_keepalive": 0.5}


def url(p):
    return "http://127.0.0.1:%d" % p


def chat(port, model="sim-model", **kw):
    return post_json(port, "/v1/chat/completions", rtlib.chat_body(model, max_tokens=4), **kw)


class T(rtlib.Case):
    def __init__(self):
        self.a, self.b = rtlib.free_ports(2)
        rtlib.start_sim([self.a, self.b], ["--output-len", "4"])
        # busy_backoff 0: a server that said "busy" stays first in line, so every request tries
        # it first and must be retried on the other.
        self.router, self.port = rtlib.start_router(
            [self.a, self.b], {"balancing": {"busy_backoff": 0, "policy": "round_robin"},
                               "config": {"max_retries": 3, "retry_delay": 0.01}})

    def teardown(self):
        print(rtlib.log_tail(self.router, 10))

    def reset(self):
        for p in (self.a, self.b):
            sim_faults(p, busy=0, fail_500=False, hang=False, drop_after=-1)

    def per_request(self, fn):
        sa0, sb0 = sim_state(self.a), sim_state(self.b)
        res = fn()
        sa1, sb1 = sim_state(self.a), sim_state(self.b)
        return res, {k: sa1[k] - sa0[k] for k in ("received", "busy", "completed", "failed")}, \
            {k: sb1[k] - sb0[k] for k in ("received", "busy", "completed", "failed")}

    def test_retry_busy_before_first_byte(self):
        try:
            for code in (503, 429):
                sim_faults(self.a, busy=code)
                tried_a = 0
                for i in range(6):
                    (st, hd, js, raw), da, db = self.per_request(lambda: chat(self.port))
                    assert st == 200, (code, st, raw)
                    assert hd["x-upstream-server"] == url(self.b), hd
                    assert db["completed"] == 1, db
                    # Never the same server twice: a busy server saw at most one attempt.
                    assert da["busy"] <= 1, (code, da)
                    tried_a += da["busy"]
                assert tried_a >= 1, "the busy server was never tried (nothing was retried)"
        finally:
            self.reset()

    def test_retry_502_504_with_delay(self):
        """502 and 504 from a server are retried on another after retry_delay; with nowhere
        else to go the server's own answer passes through; max_retries 0 retries nothing."""
        up = rtlib.EchoUpstream(model="sim-model")
        try:
            r, port = rtlib.start_router(
                [up.url, self.b], {"balancing": {"busy_backoff": 0, "policy": "round_robin"},
                                   "config": {"max_retries": 2, "retry_delay": 0.3,
                                              "failure_threshold": 100}})
            for code in (502, 504):
                up.status = code
                via_up = 0
                for i in range(4):
                    n0 = len(up.requests)
                    t0 = time.time()
                    (st, hd, js, raw), da, db = self.per_request(lambda: chat(port))
                    dt = time.time() - t0
                    tried = len(up.requests) - n0
                    assert st == 200 and hd["x-upstream-server"] == url(self.b), (code, st, raw)
                    assert tried <= 1 and db["received"] == 1, (code, tried, db)
                    if tried:
                        via_up += 1
                        assert dt >= 0.28, "retried after %.2fs, retry_delay is 0.3" % dt
                assert via_up >= 1, "the failing server was never tried"
            rtlib.stop(r)
            # Only the failing server serves the model: its 502 reaches the client as it was.
            up.status = 502
            r, port = rtlib.start_router([{"url": up.url, "models": ["only-here"]}, self.b],
                                         {"config": {"max_retries": 3, "retry_delay": 0}})
            n0 = len(up.requests)
            st, hd, js, raw = chat(port, "only-here")
            assert st == 502 and js.get("path") == "/v1/chat/completions", \
                (st, raw, rtlib.get_json(port, "/health")[1]["servers"], rtlib.log_tail(r))
            assert len(up.requests) - n0 == 1, "retried on the same server"
            rtlib.stop(r)
        finally:
            up.close()
        # max_retries 0: a busy answer passes through.
        r, port = rtlib.start_router([self.a, self.b], {"config": {"max_retries": 0}})
        try:
            sim_faults(self.a, busy=503)
            sim_faults(self.b, busy=503)
            st, hd, js, raw = chat(port)
            assert st == 503, (st, raw)
        finally:
            self.reset()
        rtlib.stop(r)

    def test_500_and_4xx_pass_through_unretried(self):
        try:
            sim_faults(self.a, fail_500=True)
            sim_faults(self.b, fail_500=True)
            (st, hd, js, raw), da, db = self.per_request(lambda: chat(self.port))
            assert st == 500, (st, raw)
            assert da["received"] + db["received"] == 1, (da, db)
        finally:
            self.reset()
        time.sleep(1.0)
        rtlib.wait_healthy(self.port, 2)
        # A request the server refuses as the client's fault (400) is not retried.
        body = {"model": "sim-model", "messages": "not a list"}
        (st, hd, js, raw), da, db = self.per_request(
            lambda: post_json(self.port, "/v1/chat/completions", body))
        assert 400 <= st < 500, (st, raw)
        assert "x-upstream-server" in hd, hd
        assert da["received"] + db["received"] <= 1, (da, db)

    def test_connect_refused_is_retried(self):
        dead_sim = rtlib.free_port()
        p = rtlib.start_sim(dead_sim)
        r, port = rtlib.start_router([dead_sim, self.b],
                                     {"config": {"health_check_interval": 30},
                                      "balancing": {"policy": "round_robin"}})
        rtlib.stop(p)  # healthy at the last check, refusing connections now
        for i in range(6):
            st, hd, js, raw = chat(port)
            assert st == 200, (i, st, raw, rtlib.log_tail(r))
            assert hd["x-upstream-server"] == url(self.b), hd
        rtlib.stop(r)

    def test_all_servers_down_503_fast(self):
        dead = rtlib.free_ports(2)
        r, port = rtlib.start_router(dead, wait=False)
        for i in range(3):
            t0 = time.time()
            st, hd, js, raw = chat(port)
            dt = time.time() - t0
            assert st == 503, (st, raw)
            assert dt < 1.0, "503 took %.2fs" % dt
            assert is_openai_error(js), raw
            assert int(hd.get("retry-after", "0")) >= 1, hd
        rtlib.stop(r)
        # Servers that were healthy and went down: out of rotation after their checks fail.
        s = rtlib.free_port()
        p = rtlib.start_sim(s)
        r, port = rtlib.start_router([s], {"config": {"health_check_consecutive_failures": 1}})
        sim_faults(s, health_fail=True)
        rtlib.wait_for(lambda: rtlib.get_json(port, "/health")[1]["healthy_servers"] == 0, 5)
        t0 = time.time()
        st, hd, js, raw = chat(port)
        assert st == 503 and is_openai_error(js) and "retry-after" in hd, (st, hd, raw)
        assert time.time() - t0 < 1.0
        rtlib.stop(r)
        rtlib.stop(p)

    def test_stale_pooled_connection(self):
        up = rtlib.EchoUpstream(model="echo-model", idle_close=1.0)
        try:
            # The router would keep the connection 10 s; the server closes it after 1 s.
            r, port = rtlib.start_router([up.url], {"timeouts": {"upstream_keepalive": 10},
                                                    "config": {"health_check_interval": 30}})
            for i in range(3):
                st, hd, js, raw = chat(port, "echo-model")
                assert st == 200, (i, st, raw)
                n = len(up.requests)
                time.sleep(1.5)
                st, hd, js, raw = chat(port, "echo-model")
                assert st == 200, (i, st, raw, rtlib.log_tail(r))
                assert len(up.requests) == n + 1, (n, len(up.requests))
            rtlib.stop(r)
        finally:
            up.close()

    def timeout_router(self, s, extra=None):
        t = rtlib.merge_tables({"timeouts": TIMEOUTS,
                                "config": {"request_timeout": 1, "max_retries": 0}}, extra)
        return rtlib.start_router([s], t)

    def test_connect_timeout(self):
        # A listener that never accepts, with its accept queue full: the kernel drops further
        # SYNs, so a connect hangs. Health checks are off (the server counts as up).
        hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        hp = hole.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                f.setblocking(False)
                f.connect_ex(("127.0.0.1", hp))
                fillers.append(f)
            time.sleep(0.2)
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", hp))
                connected = True
            except OSError:
                connected = False
            finally:
                probe.close()
            if connected:
                print("note: cannot make a connect hang on loopback here; connect timeout not tested")
                return
            r, port = rtlib.start_router(
                [{"url": url(hp), "models": ["sim-model"]}],
                {"timeouts": TIMEOUTS, "config": {"enable_active_health_check": False,
                                                  "request_timeout": 5, "max_retries": 0},
                 "balancing": {"enable_metrics_scrape": False}}, wait=False)
            t0 = time.time()
            st, hd, js, raw = chat(port)
            dt = time.time() - t0
            assert st in (502, 504) and is_openai_error(js), (st, raw, rtlib.log_tail(r))
            assert 0.4 <= dt < 2.0, "connect timeout 0.5 s took %.2fs" % dt
            rtlib.stop(r)
        finally:
            for f in fillers:
                f.close()
            hole.close()

    def test_first_byte_timeout(self):
        s = rtlib.free_port()
        rtlib.start_sim(s)
        r, port = self.timeout_router(s)
        sim_faults(s, hang=True)
        t0 = time.time()
        st, hd, js, raw = chat(port)
        dt = time.time() - t0
        assert st == 504 and is_openai_error(js), (st, raw)
        assert 0.9 <= dt < 1.6, "request_timeout 1 s answered after %.2fs" % dt
        # The abandoned request's connection was closed: the sim saw it go.
        assert rtlib.wait_for(lambda: sim_state(s)["running"] == 0 and sim_state(s)["waiting"] == 0,
                              2.0), sim_state(s)
        sim_faults(s, hang=False)
        st, hd, js, raw = chat(port)
        assert st == 200, raw
        rtlib.stop(r)

    def test_stream_idle_timeout(self):
        s = rtlib.free_port()
        rtlib.start_sim(s, ["--output-len", "50"])
        r, port = self.timeout_router(s)
        st, _, _, raw = post_json(s, "/sim/config", {"itl_ms": 3000})
        assert st == 200, raw
        t0 = time.time()
        stream = rtlib.RawStream(port, "/v1/chat/completions",
                                 rtlib.chat_body(stream=True, max_tokens=5))
        try:
            assert stream.status == 200
            evs = [d for t, d in stream.events()]
        finally:
            stream.close()
        dt = time.time() - t0
        assert evs[-1] == "[DONE]" and "error" in json.loads(evs[-2]), evs
        assert 0.4 <= dt < 2.0, "stream idle 0.5 s ended after %.2fs" % dt
        assert rtlib.wait_for(lambda: sim_state(s)["aborted"] == 1, 2.0), sim_state(s)
        rtlib.stop(r)

    def test_client_head_and_body_deadlines(self):
        s = rtlib.free_port()
        rtlib.start_sim(s)
        r, port = self.timeout_router(s)
        t0 = time.time()
        out, closed = rtlib.raw_exchange(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",
                                         timeout=3.0)
        dt = time.time() - t0
        assert rtlib.status_of(out) == 408 and closed, out
        assert is_openai_error(json.loads(rtlib.body_of(out))), out
        assert 0.4 <= dt < 1.5, dt
        t0 = time.time()
        out, closed = rtlib.raw_exchange(
            port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                  b"Content-Type: application/json\r\n\r\n{\"model\":", timeout=3.0)
        dt = time.time() - t0
        assert rtlib.status_of(out) == 408 and closed, out
        assert 0.4 <= dt < 1.5, dt
        # A head dribbled slower than the deadline allows is cut off too.
        t0 = time.time()
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 20 + b"\r\n\r\n"
        out, closed = rtlib.raw_exchange(port, None, chunks=[head[i:i + 1] for i in range(len(head))],
                                         delay=0.05, timeout=3.0)
        assert closed and rtlib.status_of(out) in (408, None), out
        assert sim_state(s)["received"] == 0
        rtlib.stop(r)

    def test_keepalive_idle_closes(self):
        s = rtlib.free_port()
        rtlib.start_sim(s)
        r, port = self.timeout_router(s)
        sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            t0 = time.time()
            while True:
                d = sock.recv(65536)
                if not d:
                    break
            dt = time.time() - t0
        finally:
            sock.close()
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        assert 0.3 <= dt < 1.5, "idle connection closed after %.2fs (keep-alive 0.5 s)" % dt
        rtlib.stop(r)

    def test_500_concurrent_none_lost(self):
        n = 500
        s1, s2 = rtlib.free_ports(2)
        # A second to the first token keeps all 500 in flight together.
        rtlib.start_sim([s1, s2], ["--ttft-ms", "1000", "--output-len", "4",
                                   "--max-num-seqs", "512"])
        r, port = rtlib.start_router([{"url": url(s1), "max_concurrent_requests": 300},
                                      {"url": url(s2), "max_concurrent_requests": 300}],
                                     workers=2)
        results = [None] * n
        gate = threading.Barrier(n + 1)

        def one(i):
            gate.wait()
            try:
                st, hd, js, raw = post_json(port, "/v1/completions",
                                            {"model": "sim-model", "prompt": "p%d" % i,
                                             "max_tokens": 4}, timeout=60)
                results[i] = (st, js["choices"][0]["text"] if st == 200 else raw)
            except Exception as e:  # noqa: BLE001 - a lost request is the failure
                results[i] = ("exception", repr(e))

        ths = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ths:
            t.start()
        t0 = time.time()
        gate.wait()
        peak = 0
        while any(t.is_alive() for t in ths) and time.time() - t0 < 90:
            peak = max(peak, sim_state(s1)["received"] - sim_state(s1)["completed"] +
                       sim_state(s2)["received"] - sim_state(s2)["completed"])
            time.sleep(0.05)
        for t in ths:
            t.join(5)
        dt = time.time() - t0
        bad = [(i, x) for i, x in enumerate(results) if x is None or x[0] != 200]
        assert not bad, "%d of %d failed, e.g. %r" % (len(bad), n, bad[:3])
        done = sim_state(s1)["completed"] + sim_state(s2)["completed"]
        assert done == n, "servers completed %d of %d" % (done, n)
        print("%d requests in %.2fs, up to %d at the servers at once" % (n, dt, peak))
        assert peak >= 400, "requests were not concurrent (peak %d)" % peak
        st, js = rtlib.get_json(port, "/load-stats")
        assert sum(x["current_load"] for x in js["servers"]) == 0, js
        rtlib.stop(r)


if __name__ == "__main__":
    T().run()
