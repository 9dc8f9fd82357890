"""End-to-end tests of the admission queue over a simulated fleet: requests wait while every
server is full and are served in arrival order as slots free; past the queue's length or its time
bound they get 429 with Retry-After; with the queue disabled every request is sent at once to the
lowest score, over capacity."""
# ctest-serial
# ctest-timeout: 180
# ctest-labels: fleet
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402
import fleetlib as fl  # noqa: E402
from fleetlib import check  # noqa: E402

ITL_MS = 20
SIM = ["--itl-ms", str(ITL_MS), "--output-len", "100000"]


class FleetQueue(rtlib.Case):
    def test_queue_holds_and_serves_in_order(self):
        a = fl.Sim(args=SIM)
        # Two workers: the queue is the router's, so order must hold across workers too.
        r = fl.Router([(a, 1)], {"queue": {"max_length": 16, "max_wait": 30}}, workers=2)
        # One request holds the only slot (~1.6 s); six more arrive 0.15 s apart and queue.
        ts0, res0 = fl.parallel(lambda i: fl.stream_first_byte(r.port, 80), 1)
        fl.wait_until(lambda: r.loads([a]) == [1], 10.0, 0.02, "slot taken")
        ts, res = fl.parallel(lambda i: fl.stream_first_byte(r.port, 15), 6, stagger=0.15)
        max_running = 0
        while any(t.is_alive() for t in ts):
            st = a.state()
            max_running = max(max_running, st["running"] + st["waiting"])
            check(r.loads([a])[0] <= 1, "router sent past capacity 1: %r", r.loads([a]))
            time.sleep(0.03)
        fl.join(ts0 + ts)
        for x in res0 + res:
            check(not isinstance(x, Exception) and x[0] == 200, "a queued request failed: %r", x)
        check(max_running <= 1, "the server had %d requests at once", max_running)
        # Each queued request started only after the holder ended, and in arrival order.
        starts = [x[1] for x in res]
        check(min(starts) >= res0[0][2] - 0.05, "a queued request started before the slot freed")
        order = sorted(range(6), key=lambda i: starts[i])
        check(order == list(range(6)), "served in order %r, arrival order 0..5 (starts %r)",
              order, [round(s - starts[0], 3) for s in starts])
        r.wait_idle()

    def test_queue_goes_to_first_free_server(self):
        a, b = fl.Sim(args=SIM), fl.Sim(args=SIM)
        r = fl.Router([(a, 1), (b, 1)])
        # a is held long, b briefly: the waiting request must take b's slot, not wait for a.
        ts, res = fl.parallel(lambda i: fl.stream_first_byte(r.port, 150 if i == 0 else 20), 2,
                              stagger=0.3)
        fl.wait_until(lambda: sum(r.loads([a, b])) == 2, 10.0, 0.02, "both slots taken")
        long_url = [s.url for s in (a, b) if r.load_by_url()[s.url]["current_load"] == 1][0]
        t0 = time.time()
        st, t_first, t_end, up, _ = fl.stream_first_byte(r.port, 5)
        check(st == 200 and up != long_url, "queued request went to %s (the held one)", up)
        check(t_first - t0 < 2.0, "queued request waited %.2fs for a 0.4 s slot", t_first - t0)
        fl.join(ts)
        r.wait_idle()

    def test_queue_sheds_past_max_length(self):
        a = fl.Sim(args=SIM)
        r = fl.Router([(a, 1)], {"queue": {"max_length": 2, "max_wait": 20},
                                 "config": {"request_timeout": 2.5}})
        a.faults(hang=True)  # the holder keeps the slot until request_timeout
        ts0, res0 = fl.parallel(lambda i: fl.completion(r.port), 1)
        fl.wait_until(lambda: r.loads([a]) == [1], 10.0, 0.02, "slot taken")
        a.faults(hang=False)
        ts, res = fl.parallel(lambda i: fl.completion(r.port, max_tokens=2), 2, stagger=0.05)
        time.sleep(0.5)
        for _ in range(3):
            t0 = time.time()
            st, h, body = fl.completion(r.port, max_tokens=2)
            took = time.time() - t0
            check(st == 429 and took < 1.0, "past max_length: %d after %.2fs", st, took)
            check(h.get("retry-after", "").isdigit() and int(h["retry-after"]) >= 1,
                  "Retry-After %r", h.get("retry-after"))
            check(isinstance(body, dict) and "error" in body, "error body %r", body)
        fl.join(ts0 + ts)
        check(res0[0][0] == 504, "the hung holder: %r", res0[0])
        check(all(x[0] == 200 for x in res), "queued requests: %r", res)
        r.wait_idle()

    def test_queue_sheds_past_max_wait(self):
        a = fl.Sim(args=SIM)
        r = fl.Router([(a, 1)], {"queue": {"max_length": 16, "max_wait": 0.5},
                                 "config": {"request_timeout": 2.0}})
        a.faults(hang=True)  # the holder keeps the slot until request_timeout
        ts0, res0 = fl.parallel(lambda i: fl.completion(r.port), 1)
        fl.wait_until(lambda: r.loads([a]) == [1], 10.0, 0.02, "slot taken")
        t0 = time.time()
        st, h, body = fl.completion(r.port, max_tokens=2)
        took = time.time() - t0
        check(st == 429 and 0.4 <= took < 1.5, "past max_wait 0.5 s: %d after %.2fs", st, took)
        check(h.get("retry-after", "").isdigit(), "Retry-After %r", h.get("retry-after"))
        check(isinstance(body, dict) and "error" in body, "error body %r", body)
        check(a.state()["received"] == 1, "the shed request reached the server")
        fl.join(ts0)
        r.wait_idle()

    def test_queue_disabled_sends_to_lowest_score(self):
        a, b = fl.Sim(args=SIM), fl.Sim(args=SIM)
        r = fl.Router([(a, 1), (b, 1)], {"queue": {"enabled": False}})
        t0 = time.time()
        ts, res = fl.parallel(lambda i: fl.completion(r.port, max_tokens=60), 4)
        loads = fl.wait_until(lambda: (lambda ls: ls if sum(ls) == 4 else None)(r.loads([a, b])),
                              10.0, 0.02, "4 requests in flight over capacity 2")
        check(loads == [2, 2], "no-queue spread %r, want [2, 2]", loads)
        fl.wait_until(lambda: a.state()["received"] + b.state()["received"] == 4, 5.0, 0.02,
                      "4 requests at the simulators")
        received = [a.state()["received"], b.state()["received"]]
        check(received == [2, 2], "simulators received %r", received)
        fl.join(ts)
        took = time.time() - t0
        check(all(x[0] == 200 for x in res), "statuses %r", res)
        check(took < 2 * 60 * ITL_MS / 1000.0 + 0.5,
              "requests were serialised (%.2fs), not sent at once", took)
        r.wait_idle()


if __name__ == "__main__":
    FleetQueue().run()
