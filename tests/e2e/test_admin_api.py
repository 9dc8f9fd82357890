"""End-to-end tests of the admin API against the real router and simulators: bearer-token auth,
listing, adding a server (it then takes traffic), draining one (its in-flight stream completes,
then it gets nothing new), removing one, the changes surviving a reload and a restart, and the
separate admin listener."""
# ctest-timeout: 180
# ctest-labels: admin
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtlib  # noqa: E402

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": "Bearer " + TOKEN}
CHAT = {"model": "sim-model", "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 4}


def run_available():
    p = subprocess.run([rtlib.BIN, "run", "--help"], capture_output=True, text=True, timeout=10)
    s = subprocess.run([rtlib.BIN, "sim", "--help"], capture_output=True, text=True, timeout=10)
    return p.returncode == 0 and s.returncode == 0


def sim_finished(port):
    """Requests the simulator on <port> finished, from its own /metrics."""
    _, _, body = rtlib.request(port, "GET", "/metrics", timeout=5)
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("vllm:request_success_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def wait_until(what, pred, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


class AdminApi(rtlib.Case):
    def __init__(self):
        if not run_available():
            rtlib.skip("'run' or 'sim' is not built")
        self.tmp = tempfile.mkdtemp(prefix="rt-admin-")
        self.sims = rtlib.free_ports(3)
        self.port, self.admin_port = rtlib.free_ports(2)
        self.sim_procs = [
            rtlib.start(["sim", "--port", str(p), "--output-len", "60", "--itl-ms", "25"],
                        wait_ports=[p]) for p in self.sims]
        self.url = ["http://127.0.0.1:%d" % p for p in self.sims]
        self.state = os.path.join(self.tmp, "state.json")
        self.config = os.path.join(self.tmp, "servers.toml")
        self.write_config()
        self.router = None
        self.start_router()
        status, _, data = rtlib.request(self.port, "GET", "/admin/servers", headers=AUTH)
        if status == 404 and b"no route" in data:
            rtlib.stop_all()
            shutil.rmtree(self.tmp, ignore_errors=True)
            rtlib.skip("the router does not serve the admin API yet (not wired in)")

    def teardown(self):
        try:  # the router's log, for a failure's story
            with open(os.path.join(self.tmp, "router.err"), errors="replace") as f:
                lines = f.read().splitlines()
            print("router stderr (last lines):\n  " + "\n  ".join(lines[-100:]))
        except OSError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_config(self, admin_port=0):
        with open(self.config, "w") as f:
            f.write('[servers]\nservers = [\n')
            for u in self.url[:2]:
                f.write('  { url = "%s", max_concurrent_requests = 4 },\n' % u)
            f.write(']\n[config]\nhealth_check_interval = 0.5\nconfig_reload_interval = 0\n')
            f.write('[listen]\nhost = "127.0.0.1"\nport = %d\nworkers = 2\n' % self.port)
            f.write('[balancing]\npolicy = "round_robin"\n')
            f.write('[logging]\ndir = "%s"\n' % os.path.join(self.tmp, "logs"))
            f.write('[admin]\ntoken = "%s"\nstate_file = "%s"\n' % (TOKEN, self.state))
            if admin_port:
                f.write('host = "127.0.0.1"\nport = %d\n' % admin_port)

    def start_router(self, wait=()):
        self.log = open(os.path.join(self.tmp, "router.err"), "ab")
        self.router = rtlib.start(["run", "--config", self.config, "--console"],
                                  wait_ports=[self.port] + list(wait), stderr=self.log)

    def stop_router(self):
        assert rtlib.stop(self.router) == 0
        self.log.close()

    def admin(self, method, path, body=None, headers=AUTH, port=None):
        status, hdrs, data = rtlib.request(port or self.port, method, path, body=body,
                                           headers=headers, timeout=10)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed

    def servers(self, port=None):
        status, _, body = self.admin("GET", "/admin/servers", port=port)
        assert status == 200, (status, body)
        return {s["url"]: s for s in body["servers"]}, body

    def chat_n(self, n):
        for _ in range(n):
            status, _, _, data = rtlib.post_json(self.port, "/v1/chat/completions", CHAT)
            assert status == 200, (status, data)

    def wait_serving(self, url):
        wait_until(url + " in the fleet and healthy",
                   lambda: (lambda s: s.get(url, {}).get("in_fleet") and
                            s[url].get("healthy"))(self.servers()[0]))

    # Tests run in name order and build on each other.

    def test_1_auth_and_errors(self):
        status, hdrs, body = self.admin("GET", "/admin/servers", headers={})
        assert status == 401, status
        assert body["error"]["type"] == "authentication_error", body
        assert "bearer" in hdrs.get("www-authenticate", "").lower(), hdrs
        status, _, _ = self.admin("GET", "/admin/servers",
                                  headers={"Authorization": "Bearer " + TOKEN + "x"})
        assert status == 401, status
        status, _, _ = self.admin("GET", "/admin/servers", headers={"Authorization": TOKEN})
        assert status == 401, status
        status, _, body = self.admin("GET", "/admin/nope")
        assert status == 404 and body["error"]["code"] == "not_found", (status, body)
        status, hdrs, _ = self.admin("PUT", "/admin/servers", body={})
        assert status == 405 and "POST" in hdrs["allow"], (status, hdrs)
        status, _, _ = self.admin("GET", "/admin/servers/drain")
        assert status == 405, status

    def test_2_list(self):
        s, body = self.servers()
        assert sorted(s) == sorted(self.url[:2]), s
        for u in self.url[:2]:
            assert s[u]["source"] == "file", s[u]
            assert s[u]["max_concurrent_requests"] == 4
            assert s[u]["drained"] is False
            assert s[u]["circuit"] == "closed", s[u]
            assert s[u]["inflight"] == 0
        assert body["state_file"] == self.state
        assert body["removed"] == []

    def test_3_add(self):
        new = {"url": self.url[2] + "/", "max_concurrent_requests": 3, "name": "third",
               "weight": 1.5}
        status, _, body = self.admin("POST", "/admin/servers", body=new)
        assert status == 201, (status, body)
        assert body["added"]["url"] == self.url[2] and body["source"] == "admin", body
        status, _, body = self.admin("POST", "/admin/servers", body={"url": self.url[2]})
        assert status == 409, (status, body)
        status, _, body = self.admin("POST", "/admin/servers",
                                     body={"url": "http://127.0.0.1:1", "weight": -1})
        assert status == 400 and "weight must be" in body["error"]["message"], body
        status, _, body = self.admin("POST", "/admin/servers", body=b"{nope")
        assert status == 400 and "not valid JSON" in body["error"]["message"], body
        with open(self.state) as f:
            st = json.load(f)
        assert [a["url"] for a in st["added"]] == [self.url[2]], st
        self.wait_serving(self.url[2])
        s, _ = self.servers()
        assert s[self.url[2]]["source"] == "admin" and s[self.url[2]]["name"] == "third", s
        before = sim_finished(self.sims[2])
        self.chat_n(9)
        got = sim_finished(self.sims[2]) - before
        assert got >= 2, "the added server took %d of 9 requests" % got

    def test_4_drain(self):
        """A stream in flight on the drained server completes; then it gets nothing new."""
        result = {}

        def stream():
            body = dict(CHAT, stream=True, max_tokens=60)
            status, _, data = rtlib.request(self.port, "POST", "/v1/chat/completions",
                                            body=body, timeout=30)
            result["status"], result["data"] = status, data

        t = threading.Thread(target=stream)
        t.start()
        busy = wait_until("the stream to be in flight",
                          lambda: [u for u, v in self.servers()[0].items() if v["inflight"] > 0])
        url = busy[0]
        port = self.sims[self.url.index(url)]
        before = sim_finished(port)
        status, _, body = self.admin("POST", "/admin/servers/drain", body={"url": url})
        assert status == 200 and body["drained"] == url, (status, body)
        s, _ = self.servers()
        assert s[url]["drained"] is True and s[url]["draining"] is True, s[url]
        self.chat_n(8)
        t.join(30)
        assert result.get("status") == 200, result
        events = rtlib.sse_events(result["data"])
        assert events and events[-1] == "[DONE]", events[-3:]
        assert sim_finished(port) == before + 1, "the drained server got new requests"
        status, _, body = self.admin("POST", "/admin/servers/drain",
                                     body={"url": "http://127.0.0.1:1"})
        assert status == 404, (status, body)
        # Undrain the file server again so the rest of the tests have a known state: the first
        # file server drained, the second serving.
        if url != self.url[0]:
            assert self.admin("POST", "/admin/servers/undrain", body={"url": url})[0] == 200
            assert self.admin("POST", "/admin/servers/drain", body={"url": self.url[0]})[0] == 200
        with open(self.state) as f:
            assert json.load(f)["drained"] == [self.url[0]]

    def test_5_remove(self):
        q = urllib.parse.quote(self.url[1], safe="")
        status, _, body = self.admin("DELETE", "/admin/servers?url=" + q)
        assert status == 200 and body["removed"] == self.url[1], (status, body)
        status, _, _ = self.admin("DELETE", "/admin/servers?url=" + q)
        assert status == 404, status
        status, _, _ = self.admin("DELETE", "/admin/servers")
        assert status == 400, status
        s, body = self.servers()
        assert self.url[1] not in s and body["removed"] == [self.url[1]], body
        before = sim_finished(self.sims[1])
        wait_until("the removed server to leave the fleet",
                   lambda: not [x for x in rtlib.get_json(self.port, "/load-stats")[1]["servers"]
                                if x["url"] == self.url[1]])
        self.chat_n(6)
        assert sim_finished(self.sims[1]) == before, "the removed server got requests"

    def expect_changed_fleet(self, port=None):
        s, body = self.servers(port)
        assert sorted(s) == sorted([self.url[0], self.url[2]]), s
        assert s[self.url[2]]["source"] == "admin" and s[self.url[2]]["name"] == "third"
        assert s[self.url[2]]["max_concurrent_requests"] == 3
        assert s[self.url[0]]["drained"] is True
        assert body["removed"] == [self.url[1]]

    def test_6_reload_and_restart(self):
        status, _, body = self.admin("POST", "/admin/reload")
        assert status == 202, (status, body)
        self.router.send_signal(1)  # SIGHUP
        time.sleep(0.5)
        self.expect_changed_fleet()
        self.stop_router()
        self.start_router()
        self.expect_changed_fleet()
        self.wait_serving(self.url[2])
        before = [sim_finished(p) for p in self.sims]
        self.chat_n(4)
        after = [sim_finished(p) for p in self.sims]
        assert after[2] - before[2] == 4, (before, after)  # the only server not drained/removed

    def test_7_separate_listener(self):
        self.stop_router()
        self.write_config(admin_port=self.admin_port)
        self.start_router(wait=[self.admin_port])
        status, _, _ = self.admin("GET", "/admin/servers")  # not on the main listener
        assert status == 404, status
        status, _, _ = self.admin("GET", "/admin/servers", headers={}, port=self.admin_port)
        assert status == 401, status
        self.expect_changed_fleet(port=self.admin_port)
        status, _, _ = self.admin("GET", "/v1/models", port=self.admin_port)
        assert status == 404, status
        status, _, body = self.admin("POST", "/admin/servers/undrain", body={"url": self.url[0]},
                                     port=self.admin_port)
        assert status == 200, (status, body)
        s, _ = self.servers(port=self.admin_port)
        assert s[self.url[0]]["drained"] is False


if __name__ == "__main__":
    AdminApi().run()
