"""End-to-end tests of the configuration command line: 'check' on good and broken files, the
environment and its precedence, 'run --help', and 'run' refusing a broken config."""
# ctest-timeout: 60
# ctest-labels: config
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtlib  # noqa: E402

DATA = os.path.join(rtlib.SOURCE_DIR, "tests", "data", "config")

FLAGS = ["--config", "--host", "--port", "--console", "--reload", "--workers", "--server",
         "--policy", "--log-level", "--help"]
ENV_VARS = ["CONFIG_PATH", "HOST", "PORT", "LOG_LEVEL", "LOG_TO_CONSOLE", "HEALTH_CHECK_INTERVAL",
            "CONFIG_RELOAD_INTERVAL", "REQUEST_TIMEOUT"]


def clean_env(extra=None):
    """The test's environment without the variables the router reads, plus <extra>."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(extra or {})
    return env


def run(args, env=None, cwd=None, timeout=20):
    p = subprocess.run([rtlib.BIN] + args, env=clean_env(env), cwd=cwd, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class CliConfig(rtlib.Case):
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="rt-cli-config-")

    def teardown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_good(self):
        path = os.path.join(DATA, "good.toml")
        rc, out, err = run(["check", "--config", path])
        assert rc == 0, (rc, out, err)
        assert out == "%s: OK, 2 servers, policy round_robin\n" % path, out
        assert err == "", err
        rc, out, _ = run(["check", "--config=" + path])
        assert rc == 0 and "OK, 2 servers" in out

    def test_check_example_file(self):
        path = os.path.join(rtlib.SOURCE_DIR, "examples", "servers.toml")
        rc, out, err = run(["check", "--config", path])
        assert rc == 0, err
        assert out.endswith(": OK, 3 servers, policy load_score\n"), out

    def test_check_broken_reports_every_problem(self):
        path = os.path.join(DATA, "broken.toml")
        rc, out, err = run(["check", "--config", path])
        assert rc == 1, (rc, out, err)
        assert out == "", out
        want = [
            '%s:4:60: max_concurrent_requests must be an integer between 1 and 1000000, got string "3"',
            '%s:5:13: duplicate server URL "http://gpu-1:8081" (first at %s:4:13); servers are '
            'matched by URL, so each may appear once',
            '%s:6:13: https servers are not supported yet ("https://gpu-2:8443"); use http://',
            "%s:10:1: unknown key 'helth_check_interval' in [config]; did you mean "
            "'health_check_interval'?",
            "%s:11:28: config.health_check_window_size must be between 1 and 1000, got 0",
            '%s:14:10: balancing.policy must be one of "load_score", "round_robin", "random", '
            '"least_inflight", "power_of_two", "consistent_hash", got string "fastest"',
            "%s:16:2: unknown table [listn]; did you mean [listen]?",
        ]
        lines = err.splitlines()
        for w in want:
            line = w.replace("%s", path)
            assert line in lines, "missing: %s\nstderr:\n%s" % (line, err)
        assert lines[-1] == "7 problems found", lines[-1]

    def test_check_syntax_error(self):
        path = os.path.join(DATA, "syntax.toml")
        rc, _, err = run(["check", "--config", path])
        assert rc == 1
        assert err.startswith("%s:7:19: " % path), err

    def test_check_missing_file(self):
        path = os.path.join(self.tmp, "nope.toml")
        rc, _, err = run(["check", "--config", path])
        assert rc == 1
        assert "%s: cannot open config file: No such file or directory" % path in err, err
        # The default path in an empty directory is an error for check, too.
        rc, _, err = run(["check"], cwd=self.tmp)
        assert rc == 1 and "servers.toml: cannot open config file" in err, err

    def test_check_uses_config_path_and_environment(self):
        path = self.write("env.toml", "[listen]\nport = 1000\n")
        rc, out, err = run(["check"], env={"CONFIG_PATH": path})
        assert rc == 0 and out.startswith(path + ": OK, 0 servers"), (out, err)
        # --config beats CONFIG_PATH.
        good = os.path.join(DATA, "good.toml")
        rc, out, _ = run(["check", "--config", good], env={"CONFIG_PATH": path})
        assert rc == 0 and out.startswith(good + ":"), out
        # A malformed variable is an error that names it.
        rc, _, err = run(["check"], env={"CONFIG_PATH": path, "PORT": "eighty",
                                         "LOG_TO_CONSOLE": "perhaps"})
        assert rc == 1
        assert 'environment variable PORT must be an integer between 1 and 65535, got "eighty"' in err, err
        assert 'environment variable LOG_TO_CONSOLE must be true or false, got "perhaps"' in err, err

    def test_check_usage(self):
        rc, out, _ = run(["check", "--help"])
        assert rc == 0 and "usage: vllm-router check" in out
        rc, _, err = run(["check", "--bogus"])
        assert rc == 1 and "unexpected argument '--bogus'" in err, err
        rc, _, err = run(["check", "--config"])
        assert rc == 1 and "needs a value" in err, err

    def test_run_help_mentions_every_flag_and_variable(self):
        rc, out, err = run(["run", "--help"])
        assert rc == 0, (rc, err)
        for name in FLAGS + ENV_VARS:
            assert name in out, "run --help does not mention %s" % name

    def test_run_refuses_broken_config(self):
        path = os.path.join(DATA, "broken.toml")
        rc, _, err = run(["run", "--console", "--config", path, "--port",
                          str(rtlib.free_port())], timeout=20)
        assert rc == 1, (rc, err)
        assert "%s:10:1: unknown key 'helth_check_interval'" % path in err, err
        rc, _, err = run(["run", "--console", "--config", os.path.join(self.tmp, "absent.toml")])
        assert rc == 1 and "absent.toml: cannot open config file" in err, err
        rc, _, err = run(["run", "--console", "--prot", "1"])
        assert rc == 1 and "did you mean '--port'" in err, err
        rc, _, err = run(["run", "--console", "--server", "ftp://x"], cwd=self.tmp)
        assert rc == 1 and "unsupported scheme 'ftp'" in err, err


if __name__ == "__main__":
    if not os.path.exists(rtlib.BIN):
        rtlib.skip("binary %s not built" % rtlib.BIN)
    CliConfig().run()
