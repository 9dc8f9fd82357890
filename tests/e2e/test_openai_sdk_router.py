# The official OpenAI Node SDK through the router (two simulators behind it): chat streamed and
# not, a completion, an embedding, and the router's own 404 as the SDK reports it. Skipped when
# node/npm or the npm registry is unavailable.
# ctest-timeout: 240
# ctest-labels: proxy sdk network
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402

SCRIPT = os.path.join(rtlib.SOURCE_DIR, "tests", "node", "sdk_router.js")


class T(rtlib.Case):
    def __init__(self):
        self.sdk = rtlib.install_openai_node_sdk()
        self.sims = rtlib.free_ports(2)
        rtlib.start_sim(self.sims, ["--model", "sdk-model", "--output-len", "6",
                                    "--itl-ms", "5", "--embedding-dim", "16"])
        self.router, self.port = rtlib.start_router(self.sims)
        rtlib.wait_for(lambda: rtlib.get_json(self.port, "/v1/models")[1]["data"], 10)

    def test_sdk_through_router(self):
        before = sum(rtlib.sim_state(p)["completed"] for p in self.sims)
        r = subprocess.run(["node", SCRIPT, self.sdk, "http://127.0.0.1:%d/v1" % self.port,
                            "sdk-model"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        assert r.returncode == 0, "node failed:\n%s\n%s\n%s" % (
            r.stdout.decode(), r.stderr.decode(), rtlib.log_tail(self.router))
        out = json.loads(r.stdout.decode().strip().splitlines()[-1])
        print(json.dumps(out, indent=1))
        c = out["chat"]
        # The sims answer 6 tokens (--output-len) of the 8 allowed: a natural stop.
        assert c["model"] == "sdk-model" and c["content"] and c["finish"] == "stop", c
        assert c["usage"]["completion_tokens"] == 6, c
        s = out["stream"]
        assert s["chunks"] >= 6 and s["text"] and s["finish"] == "stop", s
        assert s["usage"] and s["usage"]["completion_tokens"] >= 1, s
        urls = ["http://127.0.0.1:%d" % p for p in self.sims]
        assert out["headers"]["upstream"] in urls and out["headers"]["request_id"], out["headers"]
        assert out["completion"]["text"], out["completion"]
        assert out["embedding"] == {"n": 2, "dim": 16}, out["embedding"]
        u = out["unknown_model"]
        assert isinstance(u, dict) and u["status"] == 404 and u["code"] == "model_not_found", u
        after = sum(rtlib.sim_state(p)["completed"] for p in self.sims)
        assert after - before >= 5, (before, after)


if __name__ == "__main__":
    T().run()
