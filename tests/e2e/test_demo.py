"""'vllm-router demo' without a terminal: it starts three simulators and the router, serves a chat
completion for each of its two models from the right servers, and on SIGTERM (or when the router
cannot start) exits having stopped every simulator it started."""
# ctest-timeout: 120
# ctest-labels: demo
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtlib  # noqa: E402

ROUTER_ENV = ["CONFIG_PATH", "HOST", "PORT", "LOG_LEVEL", "LOG_TO_CONSOLE", "HEALTH_CHECK_INTERVAL",
              "CONFIG_RELOAD_INTERVAL", "REQUEST_TIMEOUT"]


def consecutive_free_ports(n):
    """A first port p such that p .. p+n-1 are all free now. Searched below the ephemeral range,
    where outgoing connections (which take ports next to a free one) do not land."""
    rng = random.Random(os.getpid())
    for _ in range(500):
        base = rng.randrange(20000, 32000 - n)
        socks = []
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no %d consecutive free ports" % n)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie no one reaped still answers kill(0); it is no longer running.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Demo(rtlib.Case):
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="rt-demo-")
        self.env = {k: v for k, v in os.environ.items() if k not in ROUTER_ENV}

    def teardown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_demo(self, port, sim_port):
        err = open(os.path.join(self.tmp, "stderr-%d" % port), "w")
        p = subprocess.Popen([rtlib.BIN, "demo", "--port", str(port), "--sim-port", str(sim_port)],
                             cwd=self.tmp, env=self.env, stdout=subprocess.PIPE, stderr=err,
                             text=True)
        rtlib._procs.append(p)
        err.close()
        return p

    def read_intro(self, p):
        """The lines the demo prints before starting the router, and the simulators' PIDs."""
        lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Models:"):
                break
        pids = [int(m) for m in re.findall(r"\(pid (\d+)\)", "".join(lines))]
        return "".join(lines), pids

    def test_help_and_usage_errors(self):
        out = subprocess.run([rtlib.BIN, "demo", "--help"], capture_output=True, text=True,
                             timeout=10)
        assert out.returncode == 0 and "--sim-port" in out.stdout and "--port" in out.stdout, out
        for bad in (["--port", "0"], ["--sim-port", "65534"], ["--bogus"], ["--port"],
                    ["--port", "9000", "--sim-port", "8999"]):
            out = subprocess.run([rtlib.BIN, "demo"] + bad, capture_output=True, text=True,
                                 timeout=10)
            assert out.returncode == 1, (bad, out)
            assert "vllm-router demo:" in out.stderr, (bad, out.stderr)

    def test_serves_both_models_and_stops_everything(self):
        port = rtlib.free_port()
        sim_port = consecutive_free_ports(3)
        p = self.start_demo(port, sim_port)
        intro, pids = self.read_intro(p)
        assert len(pids) == 3, intro
        assert "curl http://127.0.0.1:%d/v1/chat/completions" % port in intro, intro
        assert 'base_url="http://127.0.0.1:%d/v1"' % port in intro, intro
        for pid in pids:
            assert pid_alive(pid), pid
        rtlib.wait_port(port, 30, p)

        for model in ("demo-small", "demo-large"):
            deadline = time.time() + 20
            while True:
                status, _, body, raw = rtlib.post_json(port, "/v1/chat/completions", {
                    "model": model, "max_tokens": 8,
                    "messages": [{"role": "user", "content": "Hello"}]})
                if status == 200 or time.time() > deadline:
                    break
                time.sleep(0.2)  # not yet checked healthy
            assert status == 200, (model, status, raw)
            assert body["model"] == model, body
            assert body["choices"][0]["message"]["content"], body
            assert body["usage"]["completion_tokens"] > 0, body

        try:
            import openai  # optional: the SDK the demo's hint names
        except ImportError:
            openai = None
        if openai is not None:
            client = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % port, api_key="unused")
            r = client.chat.completions.create(model="demo-small",
                                               messages=[{"role": "user", "content": "Hi"}])
            assert r.choices[0].message.content

        assert rtlib.stop(p, signal.SIGTERM, timeout=30) == 0
        rest = p.stdout.read()
        assert "stopped the router and the 3 simulators" in rest, rest
        for pid in pids:
            assert not pid_alive(pid), "simulator %d still running" % pid

        # Each model went to its own servers: demo-small to the first two, demo-large to the third.
        with open(os.path.join(self.tmp, "logs", "vllm-router-structured.log")) as f:
            access = [json.loads(line) for line in f if '"type":"access"' in line]
        access = [rec for rec in access if rec["status"] == 200]  # not the early 503s
        by_model = {}
        for rec in access:
            by_model.setdefault(rec["model"], set()).add(rec["server"])
        small = {"http://127.0.0.1:%d" % (sim_port + i) for i in (0, 1)}
        assert by_model.get("demo-large") == {"http://127.0.0.1:%d" % (sim_port + 2)}, by_model
        assert by_model.get("demo-small") and by_model["demo-small"] <= small, by_model

    def test_router_port_taken_stops_the_simulators(self):
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        try:
            p = self.start_demo(port, consecutive_free_ports(3))
            _, pids = self.read_intro(p)
            assert len(pids) == 3
            p.wait(30)
        finally:
            blocker.close()
        assert p.returncode == 2, p.returncode
        with open(os.path.join(self.tmp, "stderr-%d" % port)) as f:
            err = f.read()
        assert str(port) in err, err
        for pid in pids:
            assert not pid_alive(pid), "simulator %d still running" % pid

    def test_simulator_port_taken(self):
        sim_port = consecutive_free_ports(3)
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind(("127.0.0.1", sim_port + 1))
        blocker.listen(1)
        try:
            out = subprocess.run([rtlib.BIN, "demo", "--port", str(rtlib.free_port()),
                                  "--sim-port", str(sim_port)], cwd=self.tmp, env=self.env,
                                 capture_output=True, text=True, timeout=30)
        finally:
            blocker.close()
        assert out.returncode == 2, out
        assert "port %d is already taken" % (sim_port + 1) in out.stderr, out.stderr


if __name__ == "__main__":
    Demo().run()
