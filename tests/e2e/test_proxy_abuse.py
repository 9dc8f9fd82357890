# Hostile and broken clients on raw sockets: garbage, oversized heads and bodies, request
# smuggling attempts, slowloris, unknown paths and methods. Each gets a 4xx (JSON) and, where the
# framing is in doubt, a closed connection; nothing reaches the server; the router keeps serving.
# ctest-timeout: 90
# ctest-labels: proxy
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402
from rtlib import raw_exchange, status_of, body_of, sim_state, is_openai_error  # noqa: E402

BODY = b'{"model":"sim-model","prompt":"x","max_tokens":2}'
PATH = b"/v1/completions"


def req(head_lines, body=b"", path=PATH, method=b"POST"):
    return method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + \
        b"".join(h + b"\r\n" for h in head_lines) + b"\r\n" + body


def chunked(body):
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


class T(rtlib.Case):
    def __init__(self):
        self.sim = rtlib.free_port()
        rtlib.start_sim(self.sim, ["--output-len", "2"])
        self.router, self.port = rtlib.start_router(
            [self.sim], {"limits": {"max_header_bytes": 4096, "max_body_bytes": 65536},
                         "timeouts": {"client_header": 2, "client_body": 2}})

    def received(self):
        return sim_state(self.sim)["received"]

    def refused(self, data, statuses=(400,), must_close=True, what=""):
        """Sends <data>; expects one of <statuses> as a JSON error, the connection closed, and
        nothing reaching the server."""
        before = self.received()
        out, closed = raw_exchange(self.port, data, timeout=3.0)
        st = status_of(out)
        assert st in statuses, "%s: got %r" % (what, out[:300])
        body = body_of(out)
        assert is_openai_error(json.loads(body)), (what, out)
        assert out.count(b"HTTP/1.1 ") == 1, "%s: more than one response: %r" % (what, out)
        if must_close:
            assert closed, "%s: connection left open after %d" % (what, st)
        assert self.received() == before, "%s reached the server" % what
        return out

    def served(self):
        st, hd, js, raw = rtlib.post_json(self.port, "/v1/completions",
                                          json.loads(BODY), timeout=5)
        assert st == 200, (st, raw)

    def test_baseline_raw_request_works(self):
        out, closed = raw_exchange(self.port, req([b"Content-Length: %d" % len(BODY),
                                                   b"Connection: close"], BODY))
        assert status_of(out) == 200 and closed, out[:200]
        out, closed = raw_exchange(self.port, req([b"Transfer-Encoding: chunked",
                                                   b"Connection: close"], chunked(BODY)))
        assert status_of(out) == 200, out[:200]

    def test_connection_limit(self):
        """listen.max_connections: past it a new connection is not served (closed at once, or
        left in the accept queue); once one closes, new connections are served again."""
        r, port = rtlib.start_router([self.sim], {"listen": {"max_connections": 4}})
        held = []
        try:
            for _ in range(4):
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(4096).startswith(b"HTTP/1.1 200"), "below the limit"
                held.append(s)
            out, closed = raw_exchange(port, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
                                       timeout=0.5)
            assert status_of(out) is None, "a fifth connection was served: %r" % out[:100]
            held.pop().close()
            time.sleep(0.2)
            out, closed = raw_exchange(port, b"GET /livez HTTP/1.1\r\nHost: x\r\n"
                                             b"Connection: close\r\n\r\n", timeout=2)
            assert status_of(out) == 200, out[:100]
        finally:
            for s in held:
                s.close()
        rtlib.stop(r)

    def test_garbage_request_line(self):
        for data in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
                     b"HELLO\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                     b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n",
                     b"G\x00T / HTTP/1.1\r\n\r\n", b"\r\n\r\n\r\n\r\n\r\n\r\nxx\r\n\r\n",
                     b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n"):
            self.refused(data, (400, 505), what=repr(data[:30]))
        self.served()

    def test_header_overflow_431(self):
        big = b"X-Big: " + b"a" * 8000
        self.refused(req([big, b"Content-Length: 2"], b"{}"), (431,), what="one big header")
        many = [b"X-H%d: v" % i for i in range(400)]
        self.refused(req(many, b""), (431,), what="many headers")
        # A head that never ends also stops at the limit, before the deadline.
        t0 = time.time()
        self.refused(b"GET /health HTTP/1.1\r\n" + b"X: " + b"b" * 20000, (431,), what="endless head")
        assert time.time() - t0 < 1.5
        self.served()

    def test_body_over_limit_413(self):
        self.refused(req([b"Content-Length: 100000"], b"{" * 100), (413,), what="content-length")
        big = b'{"model":"sim-model","prompt":"' + b"z" * 70000 + b'"}'
        self.refused(req([b"Transfer-Encoding: chunked"], chunked(big)), (413,), what="chunked")
        # Just under the limit is fine.
        ok = b'{"model":"sim-model","max_tokens":1,"prompt":"' + b"y" * 60000 + b'"}'
        out, closed = raw_exchange(self.port, req([b"Content-Length: %d" % len(ok),
                                                   b"Connection: close"], ok), timeout=10)
        assert status_of(out) == 200, out[:300]
        self.served()

    def test_smuggling_attempts(self):
        smuggled = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
        cases = {
            "CL and TE": req([b"Content-Length: 4", b"Transfer-Encoding: chunked"],
                             b"0\r\n\r\n" + smuggled),
            "TE and CL": req([b"Transfer-Encoding: chunked", b"Content-Length: 60"],
                             chunked(BODY) + smuggled),
            "duplicate CL": req([b"Content-Length: %d" % len(BODY), b"Content-Length: 5"], BODY),
            "duplicate equal CL": req([b"Content-Length: %d" % len(BODY),
                                       b"Content-Length: %d" % len(BODY)], BODY),
            "CL list": req([b"Content-Length: %d, %d" % (len(BODY), len(BODY))], BODY),
            "CL plus sign": req([b"Content-Length: +%d" % len(BODY)], BODY),
            "CL negative": req([b"Content-Length: -1"], BODY),
            "CL hex": req([b"Content-Length: 0x10"], BODY),
            "CL space before colon": req([b"Content-Length : %d" % len(BODY)], BODY),
            "TE obs-fold": req([b"Transfer-Encoding:", b" chunked"], chunked(BODY)),
            "header obs-fold": req([b"Content-Length: %d" % len(BODY), b"X-A: 1", b"\tfolded"],
                                   BODY),
            "TE chunked twice": req([b"Transfer-Encoding: chunked, chunked"], chunked(BODY)),
            "TE gzip": req([b"Transfer-Encoding: gzip"], BODY),
            "TE chunked not last": req([b"Transfer-Encoding: chunked, identity"], chunked(BODY)),
            "TE xchunked": req([b"Transfer-Encoding: xchunked"], chunked(BODY)),
            "bare LF in head": b"POST /v1/completions HTTP/1.1\nHost: x\nContent-Length: %d\n\n"
                               % len(BODY) + BODY,
            "bare LF in a header": b"POST /v1/completions HTTP/1.1\r\nHost: x\nContent-Length: 4"
                                   b"\r\n\r\n" + BODY,
            "bare CR": b"POST /v1/completions HTTP/1.1\r\nHost: x\rX: y\r\nContent-Length: %d"
                       b"\r\n\r\n" % len(BODY) + BODY,
            "bad chunk size": req([b"Transfer-Encoding: chunked"], b"zz\r\n" + BODY + b"\r\n0\r\n\r\n"),
            "chunk size overflow": req([b"Transfer-Encoding: chunked"],
                                       b"fffffffffffffffffff1\r\n" + BODY + b"\r\n0\r\n\r\n"),
            "chunk without CRLF": req([b"Transfer-Encoding: chunked"],
                                      b"%x\r\n" % len(BODY) + BODY + b"XX0\r\n\r\n"),
            "NUL in header value": req([b"Content-Length: %d" % len(BODY), b"X-A: a\x00b"], BODY),
            "space in header name": req([b"Content Length: %d" % len(BODY)], BODY),
            "HTTP/1.0 with TE": b"POST /v1/completions HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                                + chunked(BODY),
        }
        for what, data in cases.items():
            self.refused(data, (400, 501), what=what)
        self.served()

    def test_valid_framing_variants_accepted(self):
        """What RFC 9112 allows must keep working: chunk extensions, trailers, one-byte chunks,
        a query string."""
        tiny = b"".join(b"1\r\n" + BODY[i:i + 1] + b"\r\n" for i in range(len(BODY))) + b"0\r\n\r\n"
        cases = {
            "chunk extension": req([b"Transfer-Encoding: chunked", b"Connection: close"],
                                   b"%x;name=value\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"),
            "trailer": req([b"Transfer-Encoding: chunked", b"Connection: close"],
                           b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\nX-Trailer: a\r\n\r\n"),
            "one-byte chunks": req([b"Transfer-Encoding: chunked", b"Connection: close"], tiny),
            "query string": req([b"Content-Length: %d" % len(BODY), b"Connection: close"], BODY,
                                path=PATH + b"?x=1"),
        }
        for what, data in cases.items():
            out, closed = raw_exchange(self.port, data, timeout=5)
            assert status_of(out) == 200, (what, out[:300])

    def test_pipelined_requests_stay_separate(self):
        """Two well-framed requests in one write get two answers, in order."""
        one = req([b"Content-Length: %d" % len(BODY)], BODY)
        two = req([b"Content-Length: 0", b"Connection: close"], b"", path=b"/v1/models",
                  method=b"GET")
        out, closed = raw_exchange(self.port, one + two, timeout=5)
        assert out.count(b"HTTP/1.1 200") == 2, out[:500]
        assert out.index(b"text_completion") < out.index(b'"object":"list"'), out[:500]
        # A streamed answer with the next request already waiting behind it.
        sb = json.dumps({"model": "sim-model", "prompt": "x", "max_tokens": 3,
                         "stream": True}).encode()
        out, closed = raw_exchange(self.port, req([b"Content-Length: %d" % len(sb)], sb) + two,
                                   timeout=5)
        assert out.count(b"HTTP/1.1 200") == 2 and b"[DONE]" in out, out[:500]
        assert out.index(b"[DONE]") < out.index(b'"object":"list"'), out[-500:]

    def test_slowloris_others_served(self):
        n = 16
        socks = []
        stop = threading.Event()
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200
        closed_after = []

        def dribble(s):
            t0 = time.time()
            i = 0
            try:
                while not stop.is_set() and i < len(head):
                    s.sendall(head[i:i + 1])
                    i += 1
                    time.sleep(0.05)
                    s.setblocking(False)
                    try:
                        if s.recv(4096) == b"":
                            break
                    except BlockingIOError:
                        pass
                    except OSError:
                        break
                    finally:
                        s.setblocking(True)
            except OSError:
                pass
            closed_after.append(time.time() - t0)

        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
        ths = [threading.Thread(target=dribble, args=(s,)) for s in socks]
        for t in ths:
            t.start()
        try:
            lat = []
            t_end = time.time() + 3.0
            while time.time() < t_end:
                t0 = time.time()
                self.served()
                lat.append(time.time() - t0)
                time.sleep(0.05)
            print("normal client during slowloris: %d requests, max %.0f ms"
                  % (len(lat), max(lat) * 1000))
            assert max(lat) < 0.5, lat
            for t in ths:
                t.join(5)
        finally:
            stop.set()
            for s in socks:
                s.close()
        # The head deadline (2 s) cut every dribbling connection off, long before it finished.
        assert len(closed_after) == n and max(closed_after) < 3.5, closed_after
        assert min(closed_after) > 1.5, closed_after

    def test_unknown_path_and_method_json(self):
        for data, st in ((b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
                         (b"POST /v1/chat/completions/extra HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 2\r\n\r\n{}", 404),
                         (b"BREW /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405),
                         (b"GET /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405),
                         (b"PATCH /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405)):
            # The connection stays open after these (the framing is fine): ask for a close.
            data = data.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
            out, closed = raw_exchange(self.port, data, timeout=2.0)
            assert status_of(out) == st and closed, (data, out[:200])
            js = json.loads(body_of(out))
            assert is_openai_error(js), out

    def test_zz_still_serving(self):
        assert self.router.poll() is None, "the router exited"
        for _ in range(5):
            self.served()
        stream = rtlib.RawStream(self.port, "/v1/chat/completions", rtlib.chat_body(stream=True))
        try:
            evs = [d for t, d in stream.events()]
        finally:
            stream.close()
        assert evs[-1] == "[DONE]", evs


if __name__ == "__main__":
    T().run()
