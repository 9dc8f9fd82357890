#!/usr/bin/env python3
"""The official OpenAI Node SDK (openai@6 from npm) against 'vllm-router sim': chat (streamed and
not), completion, embedding. Skips with a message when node/npm or the registry is unavailable."""
# ctest-timeout: 300
# ctest-labels: network
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402


def main():
    if not shutil.which("node") or not shutil.which("npm"):
        rtlib.skip("node or npm not installed")
    build = os.environ.get("RT_BUILD_DIR", os.path.join(rtlib.SOURCE_DIR, "build"))
    sdk_dir = os.path.join(build, "node-openai")
    if not os.path.isdir(os.path.join(sdk_dir, "node_modules", "openai")):
        os.makedirs(sdk_dir, exist_ok=True)
        try:
            r = subprocess.run(["npm", "install", "--prefix", sdk_dir, "--no-audit", "--no-fund",
                                "--loglevel=error", "openai@6"],
                               capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            rtlib.skip("npm install openai@6 timed out (registry unreachable?)")
        if r.returncode != 0:
            rtlib.skip("npm install openai@6 failed (registry unreachable?): " + r.stderr[-300:])
    port = rtlib.free_port()
    p = rtlib.start(["sim", "--port", str(port)], wait_ports=[port])
    script = os.path.join(rtlib.SOURCE_DIR, "tests", "node", "openai_sdk_sim.mjs")
    env = dict(os.environ, OPENAI_SDK_DIR=os.path.join(sdk_dir, "node_modules"))
    try:
        r = subprocess.run(["node", script, "http://127.0.0.1:%d/v1" % port], capture_output=True,
                           text=True, timeout=60, env=env)
    finally:
        code = rtlib.stop(p)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        print("FAIL: the SDK script exited with %d" % r.returncode)
        sys.exit(1)
    if code != 0:
        print("FAIL: sim exited with %d" % code)
        sys.exit(1)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
