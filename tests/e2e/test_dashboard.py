"""The fullscreen dashboard of 'vllm-router run', driven in a detached tmux session: the rows of a
known fleet of simulators (health, load/capacity, running, waiting, KV %), in-flight requests
showing up, a redraw at a new window size, and 'q' shutting the router down with exit code 0."""
# ctest-timeout: 120
# ctest-labels: dashboard
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtlib  # noqa: E402

ROUTER_ENV = ["CONFIG_PATH", "HOST", "PORT", "LOG_LEVEL", "LOG_TO_CONSOLE", "HEALTH_CHECK_INTERVAL",
              "CONFIG_RELOAD_INTERVAL", "REQUEST_TIMEOUT", "TMUX", "TMUX_PANE"]
CAPS = (4, 8)
TOKENS = 150   # per slow request; at 40 ms a token that is about 6 s in flight
ITL_MS = 40


def utf8_locale():
    """A UTF-8 locale this machine has, or None (then the dashboard draws ASCII marks)."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for name in out.split():
        if name.lower().replace("-", "") in ("c.utf8", "en_us.utf8"):
            return name
    return None


class Dashboard(rtlib.Case):
    def __init__(self):
        if shutil.which("tmux") is None:
            rtlib.skip("tmux is not installed")
        self.tmp = tempfile.mkdtemp(prefix="rt-dashboard-")
        self.sock = "rt-dash-%d" % os.getpid()
        self.env = {k: v for k, v in os.environ.items() if k not in ROUTER_ENV}
        loc = utf8_locale()
        if loc:
            self.env["LANG"] = self.env["LC_ALL"] = loc
        self.up_mark = "●" if loc else "+"
        self.ports = rtlib.free_ports(3)
        self.sim_ports = self.ports[:2]
        self.port = self.ports[2]
        self.rc_file = os.path.join(self.tmp, "rc")
        self.sim = rtlib.start(
            ["sim", "--ports", ",".join("%d:%d" % (p, c) for p, c in zip(self.sim_ports, CAPS)),
             "--itl-ms", str(ITL_MS), "--output-len", str(TOKENS)],
            wait_ports=self.sim_ports)
        with open(os.path.join(self.tmp, "router.toml"), "w") as f:
            f.write("[config]\nhealth_check_interval = 1\n\n[balancing]\nscrape_interval = 0.5\n")
        servers = " ".join("--server http://127.0.0.1:%d=%d" % (p, c)
                           for p, c in zip(self.sim_ports, CAPS))
        cmd = ("cd %s && %s run --config router.toml --host 127.0.0.1 --port %d %s; echo $? > %s"
               % (self.tmp, rtlib.BIN, self.port, servers, self.rc_file))
        self.tmux("new-session", "-d", "-x", "160", "-y", "40", cmd)

    def teardown(self):
        self.tmux("kill-server", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def tmux(self, *args, check=True):
        p = subprocess.run(["tmux", "-L", self.sock] + list(args), env=self.env,
                           capture_output=True, text=True, timeout=10)
        if check and p.returncode != 0:
            raise AssertionError("tmux %s: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def screen(self):
        out = self.tmux("capture-pane", "-p")
        return (out[:-1] if out.endswith("\n") else out).split("\n")

    def row(self, lines, port):
        """The table row of the server on <port>, split into its cells from the right:
        (health mark, circuit, load, run, wait, kv, rps, fail, check)."""
        for line in lines:
            if "127.0.0.1:%d" % port in line and "healthy" not in line and "INFO" not in line:
                cells = line.split()
                return {"mark": cells[1], "health": cells[2], "circuit": cells[3],
                        "load": cells[-7], "run": cells[-6], "wait": cells[-5], "kv": cells[-4],
                        "rps": cells[-3], "fail": cells[-2], "check": cells[-1]}
        return None

    def wait_screen(self, cond, what, timeout=20.0):
        deadline = time.time() + timeout
        lines = []
        while time.time() < deadline:
            lines = self.screen()
            try:
                if cond(lines):
                    return lines
            except (IndexError, KeyError, ValueError):
                pass
            if os.path.exists(self.rc_file):
                break
            time.sleep(0.2)
        raise AssertionError("screen never showed %s:\n%s" % (what, "\n".join(lines)))

    def test_1_rows_of_the_fleet(self):
        def ready(lines):
            rows = [self.row(lines, p) for p in self.sim_ports]
            return all(r and r["mark"] == self.up_mark and r["kv"].endswith("%") for r in rows)
        lines = self.wait_screen(ready, "both servers up and scraped")
        title = lines[0]
        assert "vllm-router" in title and "127.0.0.1:%d" % self.port in title, title
        assert "policy" in title and "q quit" in title, title
        header = next(line for line in lines if "SERVER" in line)
        cols = header.split()
        assert cols == ["SERVER", "HEALTH", "CIRCUIT", "LOAD", "RUN", "WAIT", "KV%", "REQ/S",
                        "FAIL", "CHECK"], header
        for port, cap in zip(self.sim_ports, CAPS):
            r = self.row(lines, port)
            assert r["health"] == "up" and r["circuit"] == "closed", r
            assert r["load"] == "0/%d" % cap, r
            assert r["run"] == "0" and r["wait"] == "0", r
            assert r["kv"] == "0%", r
            assert r["fail"] == "0", r
            assert re.fullmatch(r"\d+m?s", r["check"]), r
        summary = next(line for line in lines if "healthy" in line and "in-flight" in line)
        assert "servers 2/2 healthy" in summary and "in-flight 0/12" in summary, summary
        assert "queued 0" in summary, summary
        assert any("listening on" in line for line in lines), "no recent events:\n" + "\n".join(lines)

    def test_2_load_and_resize(self):
        results = []

        def slow_request():
            status, _, body, _ = rtlib.post_json(self.port, "/v1/chat/completions", {
                "model": "sim-model", "max_tokens": TOKENS,
                "messages": [{"role": "user", "content": "hello"}]}, timeout=60)
            results.append(status)

        threads = [threading.Thread(target=slow_request) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            def busy(lines):
                rows = [self.row(lines, p) for p in self.sim_ports]
                inflight = sum(int(r["load"].split("/")[0]) for r in rows)
                running = sum(int(r["run"]) for r in rows)
                return inflight == 3 and running == 3
            lines = self.wait_screen(busy, "3 requests in flight and running", timeout=5.5)
            summary = next(line for line in lines if "in-flight" in line)
            assert "in-flight 3/12" in summary, summary
            assert len(lines[0].rstrip()) == 159, lines[0]

            self.tmux("resize-window", "-x", "100", "-y", "30")

            def narrow(lines):
                return (len(lines[0].rstrip()) == 99 and lines[0].rstrip().endswith("q quit")
                        and all(self.row(lines, p) for p in self.sim_ports))
            lines = self.wait_screen(narrow, "the title redrawn at 100 columns", timeout=5)
            assert len(lines) == 30, len(lines)
            assert all(len(line) <= 100 for line in lines)
            for port, cap in zip(self.sim_ports, CAPS):
                r = self.row(lines, port)
                assert r["mark"] == self.up_mark and r["load"].endswith("/%d" % cap), r
        finally:
            for t in threads:
                t.join(60)
        assert results == [200, 200, 200], results

        def settled(lines):
            rows = [self.row(lines, p) for p in self.sim_ports]
            return all(r["load"].startswith("0/") for r in rows) and \
                sum(int(r["fail"]) for r in rows) == 0
        self.wait_screen(settled, "the load back to zero", timeout=5)

    def test_3_q_quits_with_0(self):
        self.tmux("send-keys", "q")
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists(self.rc_file):
            time.sleep(0.1)
        time.sleep(0.2)  # the shell writes the file, then closes it
        assert os.path.exists(self.rc_file), "router did not exit after q:\n" + \
            "\n".join(self.screen())
        with open(self.rc_file) as f:
            rc = f.read().strip()
        assert rc == "0", rc
        with open(os.path.join(self.tmp, "logs", "vllm-router.log")) as f:
            log = f.read()
        assert "q pressed" in log and "stopped" in log, log[-2000:]


if __name__ == "__main__":
    Dashboard().run()
