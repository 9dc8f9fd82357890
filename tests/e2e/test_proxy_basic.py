# Data plane basics: every proxied endpoint reaches a server, /v1/models is the union, requests
# are routed by model (JSON and multipart), request ids, header handling, and the router's own
# OpenAI-shaped errors.
# ctest-timeout: 90
# ctest-labels: proxy
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402
from rtlib import post_json, request, sim_state, is_openai_error  # noqa: E402

PROXIED = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
           "/v1/messages", "/v1/rerank", "/rerank", "/v2/rerank", "/v1/score", "/score",
           "/pooling", "/classify", "/tokenize", "/detokenize"]
SIM_IMPLEMENTS = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize"}


def multipart(fields, files):
    boundary = "----rt" + uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (boundary, k, v)).encode()
    for k, (fname, data) in files.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (boundary, k, fname)).encode()
        out += data + b"\r\n"
    out += ("--%s--\r\n" % boundary).encode()
    return out, "multipart/form-data; boundary=" + boundary


class T(rtlib.Case):
    def __init__(self):
        self.pa, self.pb = rtlib.free_ports(2)
        # a serves alpha and shared, b serves beta and shared.
        rtlib.start_sim(self.pa, ["--model", "alpha", "--model", "shared"])
        rtlib.start_sim(self.pb, ["--model", "beta", "--model", "shared"])
        self.ua = "http://127.0.0.1:%d" % self.pa
        self.ub = "http://127.0.0.1:%d" % self.pb
        self.router, self.port = rtlib.start_router([self.pa, self.pb])
        # The model lists arrive with the health checks; wait until both are known.
        rtlib.wait_for(lambda: len(rtlib.get_json(self.port, "/v1/models")[1]["data"]) >= 3, 10)

    def counts(self, port):
        st = sim_state(port)
        return st["http_requests"], st["by_endpoint"]

    def test_endpoints_reach_the_server(self):
        for path in PROXIED:
            before_a, _ = self.counts(self.pa)
            body = {"model": "alpha", "prompt": "hi", "input": "hi",
                    "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
            st, hd, js, raw = post_json(self.port, path, body)
            assert hd.get("x-upstream-server") == self.ua, (path, st, hd)
            after_a, _ = self.counts(self.pa)
            # The sim's own /metrics and /health traffic also counts: at least one more on a.
            assert after_a > before_a, (path, before_a, after_a)
            if path in SIM_IMPLEMENTS:
                assert st == 200, (path, st, raw)
            else:
                # What the sim answers (its 404) passes through unchanged.
                assert st == 404 and js == {"detail": "Not Found"}, (path, st, raw)

    def test_model_parsing_edge_cases(self):
        cases = [
            # An escaped model name is the same name.
            (b'{"model":"bet\\u0061","prompt":"x","max_tokens":1}', self.ub),
            # The last duplicate key wins, as in the servers' JSON parsers.
            (b'{"model":"alpha","model":"beta","prompt":"x","max_tokens":1}', self.ub),
            # A nested "model" is not the request's model; a 1 MiB field before the real one.
            (json.dumps({"prompt": "w" * (1 << 20), "extra": {"model": "alpha"},
                         "max_tokens": 1, "model": "beta"}).encode(), self.ub),
            (b'{"messages":[{"role":"user","content":"\\"model\\": \\"beta\\""}],'
             b'"model":"alpha","max_tokens":1}', self.ua),
        ]
        for body, want in cases:
            st, hd, data = request(self.port, "POST", "/v1/completions", body=body,
                                   headers={"Content-Type": "application/json"})
            assert hd.get("x-upstream-server") == want, (body[:80], st, hd, data[:200])
        st, hd, data = request(self.port, "POST", "/v1/completions",
                               body=b'{"model":5,"prompt":"x"}')
        assert st == 400 and is_openai_error(json.loads(data)), (st, data)

    def test_expect_continue(self):
        body = json.dumps({"model": "beta", "prompt": "x", "max_tokens": 1}).encode()
        import socket
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Type: application/json\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            first = s.recv(4096)
            assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
            s.sendall(body)
            out = first[25:]
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        finally:
            s.close()
        assert out.startswith(b"HTTP/1.1 200") and self.ub.encode() in out, out[:300]

    def test_models_union(self):
        st, js = rtlib.get_json(self.port, "/v1/models")
        assert st == 200 and js["object"] == "list", js
        ids = [m["id"] for m in js["data"]]
        assert sorted(ids) == ["alpha", "beta", "shared"], ids

    def test_model_aware_routing(self):
        for model, url in (("alpha", self.ua), ("beta", self.ub)) * 5:
            st, hd, js, raw = post_json(self.port, "/v1/chat/completions",
                                        rtlib.chat_body(model, max_tokens=2))
            assert st == 200, raw
            assert hd["x-upstream-server"] == url, (model, hd)
            assert js["model"] == model, js
        seen = set()
        for _ in range(6):
            st, hd, js, raw = post_json(self.port, "/v1/completions",
                                        {"model": "shared", "prompt": "x", "max_tokens": 2})
            assert st == 200, raw
            seen.add(hd["x-upstream-server"])
        assert seen <= {self.ua, self.ub}, seen

    def test_unknown_model_404_lists_models(self):
        st, hd, js, raw = post_json(self.port, "/v1/chat/completions", rtlib.chat_body("nope"))
        assert st == 404, (st, raw)
        assert is_openai_error(js), raw
        msg = js["error"]["message"]
        for m in ("alpha", "beta", "shared"):
            assert m in msg, msg
        assert "x-upstream-server" not in hd

    def test_no_model_goes_anywhere(self):
        st, hd, js, raw = post_json(self.port, "/v1/chat/completions",
                                    {"messages": [{"role": "user", "content": "hi"}],
                                     "max_tokens": 2})
        assert hd.get("x-upstream-server") in (self.ua, self.ub), (st, hd, raw)

    def test_multipart_routes_by_form_model(self):
        for model, url in (("beta", self.ub), ("alpha", self.ua), ("beta", self.ub)):
            before = sim_state(self.pb if url == self.ub else self.pa)["by_endpoint"]["other"]
            body, ctype = multipart({"model": model, "language": "en"},
                                    {"file": ("a.wav", os.urandom(3000))})
            for path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
                st, hd, data = request(self.port, "POST", path, body=body,
                                       headers={"Content-Type": ctype})
                assert hd.get("x-upstream-server") == url, (model, path, st, hd, data)
                assert st == 404 and json.loads(data) == {"detail": "Not Found"}, (st, data)
            after = sim_state(self.pb if url == self.ub else self.pa)["by_endpoint"]["other"]
            assert after - before == 2, (before, after)
        body, ctype = multipart({"model": "nope"}, {"file": ("a.wav", b"RIFF")})
        st, hd, data = request(self.port, "POST", "/v1/audio/transcriptions", body=body,
                               headers={"Content-Type": ctype})
        assert st == 404 and is_openai_error(json.loads(data)), (st, data)

    def test_request_id(self):
        st, hd, js, raw = post_json(self.port, "/v1/completions",
                                    {"model": "alpha", "prompt": "x", "max_tokens": 1},
                                    headers={"X-Request-Id": "client-id-42"})
        assert st == 200 and hd.get("x-request-id") == "client-id-42", hd
        ids = set()
        for _ in range(3):
            st, hd, js, raw = post_json(self.port, "/v1/completions",
                                        {"model": "alpha", "prompt": "x", "max_tokens": 1})
            assert st == 200 and hd.get("x-request-id"), hd
            ids.add(hd["x-request-id"])
        assert len(ids) == 3, ids
        # Router-made errors carry one too.
        st, hd, js, raw = post_json(self.port, "/v1/completions", {"model": "nope"},
                                    headers={"X-Request-Id": "err-id-7"})
        assert st == 404 and hd.get("x-request-id") == "err-id-7", hd

    def test_headers_upstream(self):
        """X-Request-Id, hop-by-hop and Authorization as the server sees them (a Python echo
        upstream records the headers; one server entry has its own api_key)."""
        plain = rtlib.EchoUpstream(model="plain-model",
                                   extra_headers=[("Keep-Alive", "timeout=5"),
                                                  ("X-Upstream-Extra", "yes")])
        keyed = rtlib.EchoUpstream(model="keyed-model")
        try:
            r, port = rtlib.start_router([{"url": plain.url},
                                          {"url": keyed.url, "api_key": "sk-server-key"}])
            rtlib.wait_for(lambda: len(rtlib.get_json(port, "/v1/models")[1]["data"]) >= 2, 10)
            hdrs = {"Authorization": "Bearer client-token", "X-Request-Id": "rid-1",
                    "Connection": "keep-alive, X-Hop-Nominated", "X-Hop-Nominated": "1",
                    "Keep-Alive": "timeout=9", "TE": "trailers", "Proxy-Connection": "keep-alive",
                    "Proxy-Authorization": "Basic eHg6eXk=", "X-Custom": "kept"}
            st, hd, js, raw = post_json(port, "/v1/chat/completions",
                                        rtlib.chat_body("plain-model"), headers=hdrs)
            assert st == 200, raw
            rec = plain.requests[-1]
            assert rec["path"] == "/v1/chat/completions" and rec["method"] == "POST", rec
            assert json.loads(rec["body"])["model"] == "plain-model", rec
            h = rtlib.header_values
            assert h(rec, "x-request-id") == ["rid-1"], rec
            assert h(rec, "authorization") == ["Bearer client-token"], rec
            assert h(rec, "x-custom") == ["kept"], rec
            for name in ("keep-alive", "te", "proxy-connection", "proxy-authorization"):
                assert h(rec, name) == [], (name, rec["headers"])
            conn = ",".join(h(rec, "connection")).lower()
            assert "x-hop-nominated" not in conn, rec["headers"]
            # Response side: the server's hop-by-hop Keep-Alive is not passed on, others are.
            assert "keep-alive" not in hd and hd.get("x-upstream-extra") == "yes", hd
            assert hd.get("x-request-id") == "rid-1", hd

            st, hd, js, raw = post_json(port, "/v1/chat/completions",
                                        rtlib.chat_body("keyed-model"),
                                        headers={"Authorization": "Bearer client-token"})
            assert st == 200, raw
            rec = keyed.requests[-1]
            assert h(rec, "authorization") == ["Bearer sk-server-key"], rec["headers"]
            st, hd, js, raw = post_json(port, "/v1/chat/completions",
                                        rtlib.chat_body("keyed-model"))
            assert h(keyed.requests[-1], "authorization") == ["Bearer sk-server-key"]
            # Without a client header and without api_key: none is invented.
            post_json(port, "/v1/chat/completions", rtlib.chat_body("plain-model"))
            assert h(plain.requests[-1], "authorization") == [], plain.requests[-1]
            # A header a Connection option nominates is hop-by-hop (RFC 9110 7.6.1).
            assert h(plain.requests[0], "x-hop-nominated") == [], \
                "FAIL router bug (proxy.c): header nominated by Connection was forwarded"
            rtlib.stop(r)
        finally:
            plain.close()
            keyed.close()

    def test_malformed_json_400(self):
        for body in (b"{bad", b'{"model": "alpha",', b"\xff\xfe", b'["not", "an object"'):
            st, hd, data = request(self.port, "POST", "/v1/chat/completions", body=body,
                                   headers={"Content-Type": "application/json"})
            assert st == 400, (body, st, data)
            assert is_openai_error(json.loads(data)), data
            assert hd.get("content-type", "").startswith("application/json"), hd

    def test_unknown_path_and_method(self):
        st, hd, data = request(self.port, "GET", "/v1/nothing-here")
        assert st == 404 and is_openai_error(json.loads(data)), (st, data)
        st, hd, data = request(self.port, "POST", "/nothing", body=b"{}")
        assert st == 404 and is_openai_error(json.loads(data)), (st, data)
        for method, path in (("GET", "/v1/chat/completions"), ("DELETE", "/v1/completions"),
                             ("PUT", "/v1/embeddings"), ("POST", "/v1/models")):
            st, hd, data = request(self.port, method, path,
                                   body=b"{}" if method != "GET" else None)
            assert st == 405 and is_openai_error(json.loads(data)), (method, path, st, data)
        # Still serving.
        st, hd, js, raw = post_json(self.port, "/v1/chat/completions", rtlib.chat_body("alpha"))
        assert st == 200, raw


if __name__ == "__main__":
    T().run()
