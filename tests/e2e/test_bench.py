"""End-to-end tests of 'vllm-router bench': against a small streaming server written here (fixed
time to first token and inter-token gap, faults chosen by a request header) it must report the
latencies it was served, the right counts, and every failure under its kind; --help must list
every flag.

When the simulator is built in ('vllm-router sim'), the latency test also runs against it."""
# ctest-serial
# ctest-timeout: 240
# ctest-labels: bench
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402

TTFT = 0.050
ITL = 0.010
MODEL = "test/model-1"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj):
        self.chunk(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
                   + b"\n\n")

    def do_GET(self):
        if self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "owned_by": "vllm"},
                {"id": "other", "object": "model", "owned_by": "vllm"}]})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n))
        self.server.seen.append((self.path, req, dict(self.headers)))
        fault = self.headers.get("X-Fault", "")
        chat = self.path == "/v1/chat/completions"
        if fault.startswith("status-"):
            code = int(fault[7:])
            self.send_json(code, {"error": {"message": "busy", "type": "ServiceUnavailableError",
                                            "param": None, "code": code}})
            return
        if fault == "hang":
            time.sleep(3)
            self.close_connection = True
            return
        if req.get("model") != MODEL:
            self.send_json(404, {"error": {"message": "The model `%s` does not exist." %
                                           req.get("model"), "type": "NotFoundError",
                                           "param": "model", "code": 404}})
            return
        ntok = int(req["max_tokens"])
        t0 = time.monotonic()
        if not req.get("stream"):
            time.sleep(TTFT + ITL * (ntok - 1))
            self.send_json(200, {"id": "x", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "tok " * ntok},
                 "finish_reason": "length"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": ntok,
                          "total_tokens": 7 + ntok}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def piece(i):
            if chat:
                return {"id": "c", "object": "chat.completion.chunk", "model": MODEL,
                        "choices": [{"index": 0, "delta": {"content": "t%d " % i},
                                     "logprobs": None, "finish_reason": None}]}
            return {"id": "c", "object": "text_completion", "model": MODEL,
                    "choices": [{"index": 0, "text": "t%d " % i, "logprobs": None,
                                 "finish_reason": None}]}

        # Deadlines from the start, so sleep overshoot does not accumulate.
        for i in range(ntok):
            delay = t0 + TTFT + ITL * i - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if i == 0 and chat:
                self.event({"id": "c", "object": "chat.completion.chunk", "model": MODEL,
                            "choices": [{"index": 0, "delta": {"role": "assistant",
                                                               "content": ""},
                                         "logprobs": None, "finish_reason": None}]})
            if fault == "close" and i == 2:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if fault == "error-event" and i == 2:
                self.event({"error": {"message": "engine died", "type": "InternalServerError",
                                      "param": None, "code": 500}})
                self.event(b"[DONE]")
                self.chunk(b"")
                return
            self.event(piece(i))
        if fault == "no-done":
            self.chunk(b"")
            return
        self.event({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        if req.get("stream_options", {}).get("include_usage"):
            self.event({"id": "c", "choices": [], "usage": {
                "prompt_tokens": 7, "completion_tokens": ntok, "total_tokens": 7 + ntok}})
        self.event(b"[DONE]")
        self.chunk(b"")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that bench cancelled or timed out: expected here

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen = []
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


def bench(args, timeout=60, expect_rc=0):
    p = subprocess.run([rtlib.BIN, "bench"] + args, capture_output=True, timeout=timeout)
    out = p.stdout.decode()
    if p.returncode != expect_rc:
        raise AssertionError("bench exited %d\nstdout:\n%s\nstderr:\n%s" %
                             (p.returncode, out, p.stderr.decode()))
    return out, p.stderr.decode()


def bench_json(args, timeout=60):
    out, _ = bench(args + ["--json"], timeout=timeout)
    return json.loads(out)


def near(value, want, rel, what):
    if abs(value - want) > rel * want:
        raise AssertionError("%s = %.3f, want %.3f within %d%%" % (what, value, want, rel * 100))


class T(rtlib.Case):
    def __init__(self):
        self.srv = Server()
        self.url = "http://127.0.0.1:%d" % self.srv.port

    def teardown(self):
        self.srv.shutdown()

    def test_latencies_and_counts(self):
        ntok = 12
        r = bench_json(["--base-url", self.url, "--concurrency", "2", "--num-requests", "20",
                        "--input-len", "32", "--output-len", str(ntok), "--warmup", "2",
                        "--percentiles", "50,90,99"])
        assert r["completed"] == 20 and r["failed"] == 0, r
        assert r["num_requests"] == 20
        assert r["model"] == MODEL  # the first of GET /v1/models
        assert r["total_output_tokens"] == 20 * ntok, r["total_output_tokens"]
        assert r["total_input_tokens"] == 20 * 7  # from the usage chunk
        # Medians within 10 %; means a little looser, as a Python server's thread scheduling
        # adds the odd late chunk on a busy machine.
        near(r["median_ttft_ms"], TTFT * 1000, 0.10, "median TTFT")
        near(r["median_itl_ms"], ITL * 1000, 0.10, "median ITL")
        near(r["mean_ttft_ms"], TTFT * 1000, 0.20, "mean TTFT")
        near(r["mean_itl_ms"], ITL * 1000, 0.10, "mean ITL")
        near(r["mean_tpot_ms"], ITL * 1000, 0.10, "mean TPOT")
        near(r["mean_e2el_ms"], (TTFT + ITL * (ntok - 1)) * 1000, 0.10, "mean E2EL")
        assert r["itl_samples"] == 20 * (ntok - 1), r["itl_samples"]
        for k in ("p50_ttft_ms", "p90_ttft_ms", "p99_ttft_ms", "p99_itl_ms", "p99_e2el_ms"):
            assert k in r, k
        near(r["request_throughput"], 20 / r["duration"], 0.001, "request throughput")
        # Two at a time, each ~0.16 s: ten rounds.
        assert 0.9 < r["duration"] < 3.0, r["duration"]
        assert all(v == 0 for k, v in r["errors"].items() if k != "http_status"), r["errors"]
        # What was sent: streamed chat with usage, ignore_eos, max_tokens, 4 bytes per token.
        path, req, _ = self.srv.seen[-1]
        assert path == "/v1/chat/completions"
        assert req["stream"] is True and req["stream_options"] == {"include_usage": True}
        assert req["ignore_eos"] is True and req["max_tokens"] == ntok
        assert len(req["messages"][-1]["content"]) == 32 * 4

    def test_text_report(self):
        out, _ = bench(["--base-url", self.url, "--model", MODEL, "--concurrency", "4",
                        "--num-requests", "8", "--input-len", "8", "--output-len", "3",
                        "--endpoint", "completions"])
        assert "============ Serving Benchmark Result ============" in out, out
        assert re.search(r"^Successful requests: +8$", out, re.M), out
        assert re.search(r"^Failed requests: +0$", out, re.M), out
        assert re.search(r"^Total generated tokens: +24$", out, re.M), out
        for label in ("Mean TTFT (ms):", "Median TPOT (ms):", "P99 ITL (ms):", "Mean E2EL (ms):",
                      "Request throughput (req/s):", "Total Token throughput (tok/s):"):
            assert label in out, label
        assert self.srv.seen[-1][0] == "/v1/completions"
        assert len(self.srv.seen[-1][1]["prompt"]) == 32

    def test_http_status_errors(self):
        r = bench_json(["--base-url", self.url, "--model", MODEL, "--concurrency", "3",
                        "--num-requests", "9", "--output-len", "4", "--input-len", "4",
                        "--header", "X-Fault: status-503"])
        assert r["completed"] == 0 and r["failed"] == 9, r
        assert r["errors"]["http_status"] == {"503": 9}, r["errors"]
        # Unknown model: 404 counted too.
        r = bench_json(["--base-url", self.url, "--model", "nope", "--num-requests", "3",
                        "--output-len", "4", "--input-len", "4"])
        assert r["errors"]["http_status"] == {"404": 3}, r["errors"]

    def test_stream_faults(self):
        cases = [("error-event", "stream_error"), ("close", "closed"), ("no-done", "protocol")]
        for fault, kind in cases:
            r = bench_json(["--base-url", self.url, "--model", MODEL, "--concurrency", "2",
                            "--num-requests", "4", "--output-len", "5", "--input-len", "4",
                            "--header", "X-Fault: " + fault])
            assert r["failed"] == 4 and r["completed"] == 0, (fault, r)
            assert r["errors"][kind] == 4, (fault, r["errors"])
        out, _ = bench(["--base-url", self.url, "--model", MODEL, "--num-requests", "2",
                        "--output-len", "5", "--input-len", "4", "--header", "X-Fault: close"])
        assert re.search(r"^connection closed early: +2$", out, re.M), out

    def test_timeout_and_connect_errors(self):
        r = bench_json(["--base-url", self.url, "--model", MODEL, "--concurrency", "2",
                        "--num-requests", "2", "--output-len", "5", "--input-len", "4",
                        "--timeout", "0.3", "--header", "X-Fault: hang"])
        assert r["errors"]["timeout"] == 2 and r["failed"] == 2, r
        dead = rtlib.free_port()
        r = bench_json(["--base-url", "http://127.0.0.1:%d" % dead, "--model", MODEL,
                        "--num-requests", "5", "--concurrency", "2", "--output-len", "2"])
        assert r["errors"]["connect"] == 5 and r["failed"] == 5, r
        # Without --model the run cannot start at all.
        _, err = bench(["--base-url", "http://127.0.0.1:%d" % dead, "--num-requests", "1"],
                       expect_rc=2)
        assert "v1/models" in err, err

    def test_duration_and_cancel_at_end(self):
        # 40 tokens take ~0.45 s; stop issuing at 0.3 s and cancel what runs 0.1 s later.
        r = bench_json(["--base-url", self.url, "--model", MODEL, "--concurrency", "3",
                        "--duration", "0.3", "--grace", "0.1", "--output-len", "40",
                        "--input-len", "4"], timeout=30)
        assert r["completed"] == 0 and r["failed"] == 3, r
        assert r["errors"]["cancelled"] == 3, r["errors"]
        # Short requests: everything issued in the window completes.
        r = bench_json(["--base-url", self.url, "--model", MODEL, "--concurrency", "2",
                        "--duration", "0.5", "--output-len", "2", "--input-len", "4"])
        assert r["failed"] == 0 and r["completed"] >= 6, r
        assert r["duration"] < 1.5, r

    def test_poisson_rate(self):
        t = time.time()
        r = bench_json(["--base-url", self.url, "--model", MODEL, "--request-rate", "40",
                        "--num-requests", "30", "--output-len", "2", "--input-len", "4",
                        "--seed", "3"])
        assert r["completed"] == 30 and r["failed"] == 0, r
        assert r["request_rate"] == 40
        # 30 arrivals at 40/s: about 0.75 s of arrivals (Poisson, so loosely).
        assert 0.3 < r["duration"] < 2.5, r["duration"]
        assert time.time() - t < 10

    def test_no_stream_shared_prefix_warmup(self):
        before = len(self.srv.seen)
        r = bench_json(["--base-url", self.url, "--model", MODEL, "--no-stream",
                        "--dataset", "shared-prefix", "--prefix-groups", "2", "--prefix-len",
                        "16", "--input-len", "4", "--output-len", "3", "--num-requests", "4",
                        "--warmup", "2", "--concurrency", "2"])
        assert r["completed"] == 4 and r["failed"] == 0, r
        assert r["total_output_tokens"] == 12, r
        assert r["itl_samples"] == 0
        seen = self.srv.seen[before:]
        assert len(seen) == 6, len(seen)  # 2 warm-up + 4 measured
        measured = [s[1] for s in seen[2:]]
        assert all(m["stream"] is False for m in measured)
        systems = sorted(m["messages"][0]["content"] for m in measured)
        assert systems[0] == systems[1] and systems[2] == systems[3] and systems[1] != systems[2]
        assert all(len(m["messages"][0]["content"]) == 64 for m in measured)

    def test_help_lists_every_flag(self):
        out, _ = bench(["--help"])
        src = open(os.path.join(rtlib.SOURCE_DIR, "src", "bench_main.c")).read()
        flags = re.findall(r'\{"([a-z-]+)", (?:required|no)_argument', src)
        assert len(flags) >= 20, flags
        for f in flags:
            assert "--" + f in out, "--%s missing from --help" % f
        _, err = bench(["--concurrency", "0"], expect_rc=1)
        assert "--concurrency" in err
        _, err = bench(["--base-url", "https://x"], expect_rc=1)
        assert "https" in err
        _, err = bench(["--range-ratio", "1"], expect_rc=1)
        _, err = bench(["--header", "bad header"], expect_rc=1)
        _, err = bench(["--percentiles", "50,x"], expect_rc=1)

    def test_against_sim(self):
        """The same latency check against the simulator, when it is built in."""
        probe = subprocess.run([rtlib.BIN, "sim", "--help"], capture_output=True, timeout=10)
        text = probe.stdout.decode() + probe.stderr.decode()
        if probe.returncode != 0 or "--ttft-ms" not in text or "--itl-ms" not in text:
            print("  (simulator not available with --ttft-ms/--itl-ms: skipped)")
            return
        port = rtlib.free_port()
        p = rtlib.start(["sim", "--port", str(port), "--ttft-ms", "50", "--itl-ms", "10"],
                        wait_ports=[port])
        try:
            r = bench_json(["--base-url", "http://127.0.0.1:%d" % port, "--concurrency", "2",
                            "--num-requests", "20", "--input-len", "16", "--output-len", "10"])
            assert r["completed"] == 20 and r["failed"] == 0, r
            assert r["total_output_tokens"] == 200, r
            near(r["mean_ttft_ms"], 50, 0.10, "sim mean TTFT")
            near(r["median_ttft_ms"], 50, 0.10, "sim median TTFT")
            near(r["mean_itl_ms"], 10, 0.10, "sim mean ITL")
            near(r["median_itl_ms"], 10, 0.10, "sim median ITL")
        finally:
            rtlib.stop(p)
        # Faults injected by the simulator are counted under their kind.
        faults = [(["--fault-busy", "429"], lambda e: e["http_status"] == {"429": 6}),
                  (["--fault-500"], lambda e: e["http_status"] == {"500": 6}),
                  (["--fault-drop-after", "2"], lambda e: e["closed"] == 6)]
        for flags, check in faults:
            port = rtlib.free_port()
            p = rtlib.start(["sim", "--port", str(port)] + flags, wait_ports=[port])
            try:
                r = bench_json(["--base-url", "http://127.0.0.1:%d" % port, "--concurrency", "3",
                                "--num-requests", "6", "--input-len", "8", "--output-len", "8"])
                assert r["failed"] == 6 and r["completed"] == 0, (flags, r)
                assert check(r["errors"]), (flags, r["errors"])
            finally:
                rtlib.stop(p)


if __name__ == "__main__":
    if not os.path.exists(rtlib.BIN):
        rtlib.skip("binary not built: " + rtlib.BIN)
    T().run()
