"""End-to-end tests of health and failure handling over a simulated fleet: a server killed under
load (requests keep succeeding, it shows down in time and comes back by itself), 4xx floods that
must not eject anyone, busy answers (429/503) that shift load without ejecting, the circuit
breaker's states, a slow /health that is busy rather than dead, all servers down answered at
once with 503, and the router's in-flight counts returning to zero after every way a request
can end."""
# ctest-serial
# ctest-timeout: 240
# ctest-labels: fleet
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402
import fleetlib as fl  # noqa: E402
from fleetlib import check  # noqa: E402

FAST = ["--itl-ms", "10", "--output-len", "100000"]
SLOW = ["--itl-ms", "50", "--output-len", "100000"]
INTERVAL = 0.5
CONSECUTIVE = 2
TIMEOUT = 0.5
# consecutive failures x interval + one check timeout, plus slack for a loaded machine.
DOWN_WITHIN = CONSECUTIVE * INTERVAL + TIMEOUT + 2.0


class Load:
    """Closed-loop load: <n> threads sending short non-streamed requests until stopped."""

    def __init__(self, port, n=4, max_tokens=5):
        self.port, self.max_tokens = port, max_tokens
        self.results = []
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def loop(self):
        while not self.stopping:
            try:
                st, h, _ = fl.completion(self.port, max_tokens=self.max_tokens, timeout=20)
                res = (time.time(), st, fl.upstream(h))
            except Exception as e:  # a broken connection is a failed request
                res = (time.time(), repr(e), None)
            with self.lock:
                self.results.append(res)

    def stop(self):
        self.stopping = True
        fl.join(self.threads, 30)
        return self.results


class FleetHealth(rtlib.Case):
    def test_killed_server_under_load(self):
        sims = [fl.Sim(args=FAST) for _ in range(3)]
        victim = sims[1]
        r = fl.Router([(s, 4) for s in sims],
                      {"config": {"auto_recovery_threshold": 1.0, "retry_delay": 0.05}})
        load = Load(r.port)
        fl.wait_until(lambda: len(load.results) >= 20, 15, 0.05, "load running")
        victim.kill()
        t_kill = time.time()
        fl.wait_until(lambda: not r.health_by_url()[victim.url]["healthy"], DOWN_WITHIN, 0.05,
                      "killed server shown unhealthy on /health")
        took = time.time() - t_kill
        ls = r.load_by_url()[victim.url]
        check(ls["status"] is False, "/load-stats still shows the killed server up: %r", ls)
        h = r.health()
        check(h[0] == 200 and h[1]["healthy_servers"] == 2 and h[1]["status"] == "degraded",
              "/health %r", h)
        time.sleep(1.0)
        n_before = len(load.results)
        victim.start()  # the same port
        t_back = time.time()
        fl.wait_until(lambda: r.health_by_url()[victim.url]["healthy"], INTERVAL + 3.0, 0.05,
                      "restarted server healthy again")
        fl.wait_until(lambda: any(u == victim.url for _, _, u in load.results[n_before:]),
                      10.0, 0.05, "traffic on the restarted server")
        back = time.time() - t_back
        results = load.stop()
        bad = [x for x in results if x[1] != 200]
        check(not bad, "%d of %d requests failed around the kill: %r", len(bad), len(results),
              bad[:5])
        check(len(results) > 50, "too little load to mean anything: %d", len(results))
        r.wait_idle()
        print("  down after %.2fs, back with traffic %.2fs after restart, %d requests"
              % (took, back, len(results)))

    def test_4xx_flood_never_ejects(self):
        sims = [fl.Sim() for _ in range(2)]
        r = fl.Router([(s, 8) for s in sims], {"config": {"failure_threshold": 2}})
        bad = {"model": fl.MODEL, "messages": []}  # the simulator answers 400, as vLLM does

        def burst(i):
            out = []
            for _ in range(25):
                st, h, body = fl.completion(r.port, body=bad, path="/v1/chat/completions")
                out.append((st, fl.upstream(h), body))
            return out

        ts, res = fl.parallel(burst, 8)
        fl.join(ts)
        flat = [x for chunk in res for x in chunk]
        check(len(flat) == 200 and all(x[0] == 400 and x[1] for x in flat),
              "want 200 answers of 400 from a server: %r", [x[:2] for x in flat if x[0] != 400][:5])
        check(sum(s.state()["bad_requests"] for s in sims) == 200, "bad_requests %r",
              [s.state()["bad_requests"] for s in sims])
        check(all(s.state()["bad_requests"] > 0 for s in sims), "the flood hit one server only")
        st, h = r.health()
        check(st == 200 and h["healthy_servers"] == 2, "/health after the flood %r", h)
        for s in h["servers"]:
            check(s["healthy"] and s["circuit_state"] == "closed", "server after flood %r", s)
        for s in r.load_stats()["servers"]:
            check(s["status"] and s["circuit_state"] == "closed", "load-stats after flood %r", s)
        for _ in range(4):
            check(fl.completion(r.port)[0] == 200, "a good request failed after the flood")
        r.wait_idle()

    def test_busy_shifts_load_without_ejecting(self):
        a, b = fl.Sim(), fl.Sim()
        r = fl.Router([(a, 8), (b, 8)], {"balancing": {"busy_backoff": 2.0}})
        for code in (503, 429):
            a.faults(busy=code)
            busy_before = a.state()["busy"]
            ups = []
            for _ in range(20):
                st, h, _ = fl.completion(r.port)
                check(st == 200, "busy %d: a request failed with %d", code, st)
                ups.append(fl.upstream(h))
            check(all(u == b.url for u in ups), "busy %d: answers from %r", code, set(ups))
            refused = a.state()["busy"] - busy_before
            check(1 <= refused <= 4, "busy %d: the busy server was tried %d times in 20 requests "
                  "(want a few, then avoided)", code, refused)
            hs = r.health_by_url()[a.url]
            check(hs["healthy"] and hs["circuit_state"] == "closed",
                  "busy %d ejected the server: %r", code, hs)
            a.faults(busy=0)
            time.sleep(2.3)  # the back-off ends
            ups = [fl.upstream(fl.completion(r.port)[1]) for _ in range(10)]
            check(a.url in ups, "busy %d: the server got no work after the back-off: %r",
                  code, ups)
        # Every server busy: the server's own answer comes through, nothing hangs.
        a.faults(busy=503)
        b.faults(busy=503)
        t0 = time.time()
        st, h, body = fl.completion(r.port)
        check(st in (429, 503) and time.time() - t0 < 2.0, "all busy: %d after %.1fs",
              st, time.time() - t0)
        a.faults(busy=0)
        b.faults(busy=0)
        r.wait_idle()
        h = r.health()[1]
        check(h["healthy_servers"] == 2, "busy servers were ejected: %r", h)

    def test_circuit_breaker_states(self):
        a = fl.Sim(args=SLOW)
        r = fl.Router([(a, 4)], {"config": {"failure_threshold": 2, "auto_recovery_threshold": 1.0,
                                            "max_retries": 0}})

        def circuit():
            return r.load_by_url()[a.url]["circuit_state"]

        check(circuit() == "closed", "fresh circuit %s", circuit())
        a.faults(fail_500=True)
        check(fl.completion(r.port)[0] == 500, "fail_500 not passed through")
        check(circuit() == "closed", "opened after one failure (threshold 2)")
        check(fl.completion(r.port)[0] == 500, "fail_500 not passed through")
        check(circuit() == "open", "not open after 2 failures: %s", circuit())
        check(r.health_by_url()[a.url]["circuit_state"] == "open", "/health disagrees")
        check(r.load_by_url()[a.url]["status"] is False, "open server shown available")
        received = a.state()["received"]
        t0 = time.time()
        st, h, body = fl.completion(r.port)
        check(st == 503 and h.get("retry-after") and time.time() - t0 < 1.0,
              "open circuit: %d %r in %.2fs", st, h, time.time() - t0)
        check(a.state()["received"] == received, "a request reached the open server")

        # Half-open after the recovery time: one trial, shown while it runs; closed on success.
        a.faults(fail_500=False)
        time.sleep(1.2)
        ts, res = fl.parallel(lambda i: fl.completion(r.port, max_tokens=60), 1)
        fl.wait_until(lambda: circuit() == "half_open", 5.0, 0.02, "half_open during the trial")
        st, _, _ = fl.completion(r.port)
        check(st == 503, "a second request went out while the trial was running: %d", st)
        fl.join(ts)
        check(res[0][0] == 200, "trial failed: %r", res[0])
        check(circuit() == "closed", "not closed after a good trial: %s", circuit())
        check(fl.completion(r.port)[0] == 200, "closed circuit refused a request")

        # A failed trial opens it again.
        a.faults(fail_500=True)
        fl.completion(r.port)
        fl.completion(r.port)
        check(circuit() == "open", "not open again: %s", circuit())
        time.sleep(1.2)
        check(fl.completion(r.port)[0] == 500, "trial did not reach the server")
        check(circuit() == "open", "a failed trial left the circuit %s", circuit())
        check(fl.completion(r.port)[0] == 503, "open again but still sending")
        a.faults(fail_500=False)
        r.wait_idle()

    def test_slow_health_with_live_metrics_is_busy_not_dead(self):
        a, b = fl.Sim(), fl.Sim()
        r = fl.Router([(a, 4), (b, 4)], {"config": {"health_check_max_response_time": 0.3},
                                         "balancing": {"scrape_interval": 0.2}})
        a.faults(slow_health_ms=1500)  # every check times out (0.5 s), metrics still answer
        time.sleep(3.0)
        hs = r.health_by_url()[a.url]
        check(hs["healthy"], "slow /health with live metrics ejected the server: %r", hs)
        # Without metrics, the same slow /health is a dead server.
        a.faults(garbled_metrics=True)
        fl.wait_until(lambda: not r.health_by_url()[a.url]["healthy"], 6.0, 0.1,
                      "slow /health and garbled metrics -> unhealthy")
        a.faults(clear=True)
        fl.wait_until(lambda: r.health_by_url()[a.url]["healthy"], 5.0, 0.1, "back")

    def test_all_down_is_503_at_once(self):
        sims = [fl.Sim() for _ in range(2)]
        r = fl.Router([(s, 4) for s in sims])
        for s in sims:
            s.faults(health_fail=True)
        fl.wait_until(lambda: r.health()[0] == 503, DOWN_WITHIN, 0.05, "/health 503")
        check(r.health()[1]["status"] == "unhealthy", "status %r", r.health()[1]["status"])
        for _ in range(3):
            t0 = time.time()
            st, h, body = fl.completion(r.port)
            took = time.time() - t0
            check(st == 503 and took < 1.0, "all down: %d after %.2fs", st, took)
            check(h.get("retry-after", "").isdigit(), "no Retry-After: %r", h)
            check(isinstance(body, dict) and isinstance(body.get("error"), dict) and
                  body["error"].get("message"), "not an OpenAI-shaped error: %r", body)
        # Servers that never answered at all: the same.
        ports = rtlib.free_ports(2)
        r2 = fl.Router([("http://127.0.0.1:%d" % p, 4) for p in ports], wait=False)
        time.sleep(1.0)
        t0 = time.time()
        st, h, body = fl.completion(r2.port)
        check(st == 503 and time.time() - t0 < 1.0 and h.get("retry-after"),
              "no server reachable: %d %r after %.2fs", st, h, time.time() - t0)
        for s in sims:
            s.faults(health_fail=False)
        fl.wait_healthy(r.port, 2, 5.0)
        check(fl.completion(r.port)[0] == 200, "not serving after the servers came back")

    def test_inflight_returns_to_zero_on_every_path(self):
        a, b = fl.Sim(args=["--itl-ms", "20", "--output-len", "100000"]), \
            fl.Sim(args=["--itl-ms", "20", "--output-len", "100000"])
        r = fl.Router([(a, 1), (b, 1)], {"config": {"request_timeout": 1.5, "max_retries": 1,
                                                    "retry_delay": 0.05,
                                                    "failure_threshold": 1000},
                                         "balancing": {"busy_backoff": 0.0}})
        # Health checks and scrapes alone never move the counts.
        time.sleep(1.5)
        check(r.loads([a, b]) == [0, 0], "idle loads %r", r.loads([a, b]))

        # Done.
        for _ in range(4):
            check(fl.completion(r.port)[0] == 200, "plain request failed")
        r.wait_idle()

        # Upstream error (500 passed through).
        a.faults(fail_500=True)
        b.faults(fail_500=True)
        for _ in range(4):
            check(fl.completion(r.port)[0] == 500, "500 not passed through")
        r.wait_idle()
        a.faults(clear=True)
        b.faults(clear=True)

        # Retry elsewhere: a is busy, every request ends on b.
        a.faults(busy=503)
        for _ in range(4):
            st, h, _ = fl.completion(r.port)
            check(st == 200 and fl.upstream(h) == b.url, "retry elsewhere: %d via %s", st,
                  fl.upstream(h))
        check(a.state()["busy"] >= 1, "the retry path was not exercised")
        r.wait_idle()
        a.faults(clear=True)

        # Timeout: both hang; 504 after request_timeout.
        a.faults(hang=True)
        b.faults(hang=True)
        t0 = time.time()
        st, _, _ = fl.completion(r.port)
        check(st == 504 and 1.0 < time.time() - t0 < 4.0, "hang: %d after %.2fs", st,
              time.time() - t0)
        r.wait_idle()
        a.faults(clear=True)
        b.faults(clear=True)

        # Client gone mid-stream: the upstream request is aborted too.
        aborted = a.state()["aborted"] + b.state()["aborted"]
        s, got = fl.open_stream(r.port, 300)
        check(b"data:" in got, "no stream started: %r", got[:200])
        check(sum(r.loads([a, b])) == 1, "stream not counted")
        s.close()
        r.wait_idle()
        fl.wait_until(lambda: a.state()["aborted"] + b.state()["aborted"] > aborted, 5.0, 0.05,
                      "the simulator saw the abort")

        # Client gone before the first byte (non-streamed, still generating).
        body = b'{"model":"sim-model","prompt":"x","max_tokens":300}'
        s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        fl.wait_until(lambda: sum(r.loads([a, b])) == 1, 5.0, 0.02, "request dispatched")
        s.close()
        r.wait_idle()

        # Client gone while queued: both slots held by streams, a third waits, then leaves.
        held = [fl.open_stream(r.port, 300)[0] for _ in range(2)]
        check(r.loads([a, b]) == [1, 1], "slots not held: %r", r.loads([a, b]))
        s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.5)
        s.close()
        for h in held:
            h.close()
        r.wait_idle()
        check(fl.completion(r.port)[0] == 200, "router unusable after the paths")
        r.wait_idle()


if __name__ == "__main__":
    FleetHealth().run()
