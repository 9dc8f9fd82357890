# Streaming through the router: SSE events arrive live, the SSE headers, a stream that breaks
# mid-way ends in-band and is not retried, a client that goes away aborts the upstream request at
# once, and a slow reader does not make the router buffer the stream.
# ctest-timeout: 120
# ctest-labels: proxy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402
from rtlib import sim_state, sim_faults  # noqa: E402

ITL_MS = 100


def total(ports, key):
    return sum(sim_state(p)[key] for p in ports)


def current_load(port):
    st, js = rtlib.get_json(port, "/load-stats")
    return sum(s["current_load"] for s in js["servers"])


class T(rtlib.Case):
    def __init__(self):
        # Two sims in one process: 100 ms between tokens, up to 2000 tokens per answer.
        self.sims = rtlib.free_ports(2)
        rtlib.start_sim(self.sims, ["--itl-ms", str(ITL_MS), "--output-len", "2000"])
        # A fast sim for the slow-reader test: long answers as fast as it can produce them.
        self.fast = rtlib.free_port()
        rtlib.start_sim(self.fast, ["--model", "fast-model", "--output-len", "60000",
                                    "--max-model-len", "200000"])
        self.router, self.port = rtlib.start_router(self.sims + [self.fast])
        rtlib.wait_for(lambda: len(rtlib.get_json(self.port, "/v1/models")[1]["data"]) >= 2, 10)

    def teardown(self):
        print(rtlib.log_tail(self.router, 15))

    def test_events_arrive_live(self):
        n = 10
        s = rtlib.RawStream(self.port, "/v1/chat/completions",
                            rtlib.chat_body(stream=True, max_tokens=n))
        try:
            assert s.status == 200, s.status
            h = s.headers
            assert h.get("content-type", "").startswith("text/event-stream"), h
            assert h.get("cache-control") == "no-cache", h
            assert h.get("x-accel-buffering") == "no", h
            assert h.get("transfer-encoding", "").lower() == "chunked", h
            assert "content-length" not in h, h
            evs = list(s.events())
        finally:
            s.close()
        assert evs[-1][1] == "[DONE]", evs[-3:]
        times = [t for t, d in evs if d != "[DONE]"]
        tokens = [json.loads(d) for t, d in evs if d != "[DONE]"]
        assert all(tok["object"] == "chat.completion.chunk" for tok in tokens), tokens[:2]
        end = evs[-1][0]
        print("event arrival times (s):", ", ".join("%.3f" % t for t in times))
        # n tokens at 100 ms each: the whole answer takes about a second; the first event must
        # be at the client long before the end, and the events spread over the duration.
        assert end >= (n - 1) * ITL_MS / 1000 * 0.8, end
        assert times[0] < end - 0.5, (times[0], end)
        # Each event arrives close to when it was produced: never two thirds of the events at
        # once, and the median gap between arrivals is near the inter-token latency.
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        median = gaps[len(gaps) // 2]
        assert median > ITL_MS / 1000 * 0.5, gaps
        buckets = {}
        for t in times:
            buckets[round(t, 1)] = buckets.get(round(t, 1), 0) + 1
        assert max(buckets.values()) <= len(times) * 2 // 3, buckets

    def test_http10_client_gets_close_delimited_stream(self):
        s = rtlib.RawStream(self.port, "/v1/chat/completions",
                            rtlib.chat_body(stream=True, max_tokens=3), version="1.0")
        try:
            assert s.status == 200 and not s.chunked, s.headers
            assert "content-length" not in s.headers, s.headers
            evs = [d for t, d in s.events()]
        finally:
            s.close()
        assert evs[-1] == "[DONE]" and len(evs) >= 4, evs

    def test_midstream_break_ends_in_band_without_retry(self):
        for p in self.sims:
            sim_faults(p, drop_after=3)
        try:
            rec0, drop0 = total(self.sims, "received"), total(self.sims, "dropped")
            s = rtlib.RawStream(self.port, "/v1/chat/completions",
                                rtlib.chat_body(stream=True, max_tokens=20))
            try:
                assert s.status == 200, s.status
                evs = [d for t, d in s.events()]  # raises if the body does not end cleanly
                # The connection stays usable (clean end of a chunked body, keep-alive).
                assert s.ended
            finally:
                s.close()
            assert len(evs) >= 2 and evs[-1] == "[DONE]", evs
            err = json.loads(evs[-2])
            assert isinstance(err.get("error"), dict) and isinstance(err["error"].get("message"), str), err
            data_events = [e for e in evs[:-2]]
            assert 1 <= len(data_events) <= 3, evs
            time.sleep(0.3)
            rec1, drop1 = total(self.sims, "received"), total(self.sims, "dropped")
            assert rec1 - rec0 == 1, "the broken stream was retried: %d requests" % (rec1 - rec0)
            assert drop1 - drop0 == 1, (drop0, drop1)
        finally:
            for p in self.sims:
                sim_faults(p, drop_after=-1)

    def test_client_disconnect_aborts_upstream(self):
        ab0 = total(self.sims, "aborted")
        s = rtlib.RawStream(self.port, "/v1/chat/completions",
                            rtlib.chat_body(stream=True, max_tokens=1000))
        got = 0
        for t, d in s.events():
            got += 1
            if got == 3:
                break
        assert current_load(self.port) == 1, rtlib.get_json(self.port, "/load-stats")
        assert total(self.sims, "running") == 1
        t0 = time.time()
        s.close()
        aborted = rtlib.wait_for(lambda: total(self.sims, "aborted") > ab0, timeout=3.0, step=0.005)
        dt = time.time() - t0
        print("upstream abort seen after %.0f ms" % (dt * 1000))
        assert aborted, "the simulator never saw the abort"
        # The target is 100 ms; polling /sim/state adds a little.
        assert dt < 0.3, "upstream abort took %.0f ms" % (dt * 1000)
        assert rtlib.wait_for(lambda: current_load(self.port) == 0, timeout=1.0), \
            rtlib.get_json(self.port, "/load-stats")
        assert total(self.sims, "running") == 0

    def test_slow_reader_bounded_memory(self):
        tokens = 50000
        base = rtlib.rss_kib(self.router.pid)
        s = rtlib.RawStream(self.port, "/v1/completions",
                            {"model": "fast-model", "prompt": "go", "max_tokens": tokens,
                             "stream": True}, rcvbuf=16384, timeout=30)
        try:
            assert s.status == 200
            # Read a little, then stop reading while the server could produce the whole answer.
            first = []
            for t, d in s.events():
                first.append(d)
                if len(first) == 5:
                    break
            peak = base
            for _ in range(30):
                time.sleep(0.1)
                peak = max(peak, rtlib.rss_kib(self.router.pid))
            st = sim_state(self.fast)
            growth = peak - base
            print("router RSS %d KiB before, peak %d KiB while the client did not read "
                  "(+%d KiB); sim generated %d tokens so far" % (base, peak, growth,
                                                                st["generation_tokens"]))
            # The whole answer is ~%d MiB; the router may hold a few socket buffers' worth.
            assert growth < 12 * 1024, "router grew by %d KiB for a stalled reader" % growth
            # Reading resumes: the stream completes with every token.
            rest = [d for t, d in s.events()]
        finally:
            s.close()
        evs = first + rest
        assert evs[-1] == "[DONE]", evs[-3:]
        text_events = [json.loads(d) for d in evs[:-1]]
        assert len(text_events) >= tokens, len(text_events)
        assert text_events[-1]["choices"][0]["finish_reason"] == "length", text_events[-1]


if __name__ == "__main__":
    T().run()
