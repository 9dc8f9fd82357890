"""End-to-end tests of balancing over a simulated fleet: load follows capacity, a burst spreads
by capacity, every policy name is accepted and behaves as documented (round robin's weighted
shares, consistent hashing's session affinity, least in-flight avoiding a busy server), and
requests only go to servers that serve their model."""
# ctest-serial
# ctest-timeout: 180
# ctest-labels: fleet
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402
import fleetlib as fl  # noqa: E402
from fleetlib import check  # noqa: E402

ITL_MS = 50
SLOW = ["--itl-ms", str(ITL_MS), "--output-len", "100000"]


class FleetBalance(rtlib.Case):
    def test_capacity_distribution(self):
        # Capacities 1, 2 and 4; seven requests of ~4 s each at once: the router must place
        # them 1, 2, 4 (queue on, so no server is ever given more than its capacity).
        sims = [fl.Sim(args=SLOW) for _ in range(3)]
        r = fl.Router([(sims[0], 1), (sims[1], 2), (sims[2], 4)])
        ts, res = fl.parallel(lambda i: fl.completion(r.port, max_tokens=80), 7)
        loads = fl.wait_until(lambda: (lambda ls: ls if sum(ls) == 7 else None)(r.loads(sims)),
                              15.0, 0.05, "7 requests in flight")
        check(loads == [1, 2, 4], "current_load %r, want [1, 2, 4]", loads)
        ls = r.load_by_url()
        for s, cap in zip(sims, (1, 2, 4)):
            e = ls[s.url]
            check(e["max_capacity"] == cap and e["available_capacity"] == 0 and
                  e["utilization_percent"] == 100.0, "load-stats entry %r", e)
        summ = r.load_stats()["summary"]
        check(summ["total_active_load"] == 7 and summ["total_capacity"] == 7, "summary %r", summ)
        received = [s.state()["received"] for s in sims]
        check(received == [1, 2, 4], "simulators received %r, want [1, 2, 4]", received)
        fl.join(ts)
        check(all(x[0] == 200 for x in res), "statuses %r", res)
        r.wait_idle()

    def test_burst_spreads_by_capacity(self):
        # Capacities 10, 20 and 40 never bind for 20 requests; what spreads them is the score
        # and the estimate between scrapes (dispatched since the last scrape): with a stale
        # snapshot all 20 would see the same idle fleet and land on one server.
        sims = [fl.Sim(args=SLOW) for _ in range(3)]
        caps = (10, 20, 40)
        r = fl.Router(list(zip(sims, caps)), {"balancing": {"policy": "load_score",
                                                            "scrape_interval": 0.2}})
        ts, res = fl.parallel(lambda i: fl.completion(r.port, max_tokens=80), 20)
        loads = fl.wait_until(lambda: (lambda ls: ls if sum(ls) == 20 else None)(r.loads(sims)),
                              15.0, 0.05, "20 requests in flight")
        fl.join(ts)
        check(all(x[0] == 200 for x in res), "statuses %r", [x[0] for x in res])
        counts = collections.Counter(fl.upstream(x[1]) for x in res)
        got = [counts[s.url] for s in sims]
        check(got == loads, "X-Upstream-Server counts %r differ from /load-stats %r", got, loads)
        # Proportional shares are 2.9, 5.7 and 11.4.
        check(max(got) <= 14, "burst piled onto one server: %r", got)
        check(all(g >= 1 for g in got), "a server got nothing: %r", got)
        check(got[0] <= got[1] <= got[2], "shares %r do not follow capacities %r", got, caps)
        check(abs(got[2] - 11.4) <= 3 and abs(got[0] - 2.9) <= 3, "shares %r vs 2.9/5.7/11.4", got)
        r.wait_idle()

    def test_round_robin_weights_and_load_score_ties(self):
        # round_robin honours weights 1:2:3 exactly over every 6 picks; load_score ignores
        # weights and rotates ties, so the same fleet shares evenly: the policy changes behaviour.
        sims = [fl.Sim() for _ in range(3)]
        servers = [{"url": s.url, "max_concurrent_requests": 4, "weight": w}
                   for s, w in zip(sims, (1.0, 2.0, 3.0))]
        r = fl.Router(servers, {"balancing": {"policy": "round_robin"}}, workers=1)
        seq = [fl.upstream(fl.completion(r.port)[1]) for _ in range(30)]
        counts = [seq.count(s.url) for s in sims]
        check(counts == [5, 10, 15], "round_robin 1:2:3 over 30 picks gave %r", counts)
        for k in range(0, 30, 6):
            window = [seq[k:k + 6].count(s.url) for s in sims]
            check(window == [1, 2, 3], "picks %d..%d gave %r, want [1, 2, 3]", k, k + 5, window)
        r.stop()

        r = fl.Router(servers, {"balancing": {"policy": "load_score"}}, workers=1)
        seq = [fl.upstream(fl.completion(r.port)[1]) for _ in range(30)]
        counts = [seq.count(s.url) for s in sims]
        check(counts == [10, 10, 10], "load_score ties over 30 sequential picks gave %r", counts)
        r.wait_idle()
        r.stop()

    def test_round_robin_alternates(self):
        sims = [fl.Sim() for _ in range(2)]
        r = fl.Router([(sims[0], 4), (sims[1], 4)], {"balancing": {"policy": "round_robin"}},
                      workers=1)
        seq = [fl.upstream(fl.completion(r.port)[1]) for _ in range(20)]
        check(all(a != b for a, b in zip(seq, seq[1:])), "round_robin repeated a server: %r", seq)
        check(seq.count(sims[0].url) == 10, "uneven: %r", seq)

    def test_consistent_hash_affinity(self):
        sims = [fl.Sim() for _ in range(3)]
        r = fl.Router([(s, 8) for s in sims], {"balancing": {"policy": "consistent_hash"}})
        owners = {}
        for k in range(12):
            key = "session-%d" % k
            got = {fl.upstream(fl.completion(r.port, headers={"X-Session-Id": key})[1])
                   for _ in range(5)}
            check(len(got) == 1, "session %s went to %r", key, got)
            owners[key] = got.pop()
        check(len(set(owners.values())) >= 2, "12 sessions all on one server: %r", owners)
        # The body's "user" is the key when the header is absent.
        body = {"model": fl.MODEL, "prompt": "hi", "max_tokens": 2, "user": "alice"}
        got = {fl.upstream(fl.completion(r.port, body=body)[1]) for _ in range(5)}
        check(len(got) == 1, "user alice went to %r", got)
        r.wait_idle()

    def test_least_inflight_and_power_of_two_avoid_busy_server(self):
        # With one slow request holding server A, the next requests go to B under both
        # policies (power of two with two candidates always compares both).
        for policy in ("least_inflight", "power_of_two"):
            sims = [fl.Sim(args=SLOW) for _ in range(2)]
            r = fl.Router([(sims[0], 4), (sims[1], 4)], {"balancing": {"policy": policy}})
            ts, res = fl.parallel(lambda i: fl.completion(r.port, max_tokens=100), 1)
            fl.wait_until(lambda: sum(r.loads(sims)) == 1, 15.0, 0.05, "one request in flight")
            busy = [s.url for s, n in zip(sims, r.loads(sims)) if n == 1][0]
            for _ in range(5):
                st, h, _ = fl.completion(r.port, max_tokens=1)
                check(st == 200 and fl.upstream(h) != busy,
                      "%s sent a request to the busy server %s", policy, busy)
            fl.join(ts)
            r.wait_idle()
            r.stop()

    def test_every_policy_accepted(self):
        sims = [fl.Sim() for _ in range(3)]
        for policy in ("load_score", "round_robin", "random", "least_inflight", "power_of_two",
                       "consistent_hash"):
            r = fl.Router([(s, 4) for s in sims], {"balancing": {"policy": policy}})
            seen = collections.Counter()
            for i in range(30):
                st, h, body = fl.completion(r.port, headers={"X-Session-Id": "s%d" % i})
                check(st == 200, "%s: request %d: status %d %r via %s", policy, i, st, body,
                      fl.upstream(h))
                seen[fl.upstream(h)] += 1
            check(len(seen) >= 2, "%s used only %r", policy, dict(seen))
            r.wait_idle()
            r.stop()
        # An unknown name is refused at start.
        r_port = rtlib.free_port()
        p = rtlib.start(["run", "--port", str(r_port), "--policy", "no_such_policy",
                         "--server", sims[0].url], stderr=open(os.devnull, "w"))
        check(p.wait(10) == 1, "unknown policy: exit %r, want 1", p.returncode)

    def test_model_aware_filtering(self):
        a = fl.Sim(models=("model-a",))
        b = fl.Sim(models=("model-b",))
        c = fl.Sim(models=("model-a", "model-b"))
        r = fl.Router([(a, 4), (b, 4), (c, 4)])
        fl.wait_until(lambda: all(s["supported_models"] for s in r.health()[1]["servers"]),
                      5.0, 0.05, "model lists")
        for model, allowed in (("model-a", {a.url, c.url}), ("model-b", {b.url, c.url})):
            seen = set()
            for _ in range(12):
                st, h, body = fl.completion(r.port, model=model)
                check(st == 200 and body["model"] == model, "%s: %d %r", model, st, body)
                seen.add(fl.upstream(h))
            check(seen == allowed, "%s went to %r, want %r", model, seen, allowed)
        st, h, body = fl.completion(r.port, model="model-z")
        check(st == 404 and "error" in body, "unknown model: %d %r", st, body)
        st, models = rtlib.get_json(r.port, "/v1/models")
        ids = sorted(m["id"] for m in models["data"])
        check(ids == ["model-a", "model-b"], "router /v1/models %r", ids)
        # With model-a's only dedicated server down, model-a still goes to c, never to b.
        a.faults(health_fail=True)
        fl.wait_until(lambda: not r.health_by_url()[a.url]["healthy"], 5.0, 0.05, "a down")
        for _ in range(6):
            st, h, _ = fl.completion(r.port, model="model-a")
            check(st == 200 and fl.upstream(h) == c.url, "model-a: %d via %s", st, fl.upstream(h))
        r.wait_idle()


if __name__ == "__main__":
    FleetBalance().run()
