"""Runs toml-decode over the toml-test suite (TOML 1.0 file list): every valid document must decode
to the expected tagged JSON and at least 99% of the invalid ones must be rejected cleanly."""
# ctest-timeout: 600
# ctest-labels: toml
import concurrent.futures
import json
import math
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import rtlib  # noqa: E402

BUILD_DIR = os.environ.get("RT_BUILD_DIR", os.path.join(rtlib.SOURCE_DIR, "build"))
DECODER = os.path.join(BUILD_DIR, "toml-decode")
ERROR_LINE = re.compile(r"^\d+:\d+: \S")
# ASan and UBSan report with exit code 1 by default, which would pass for a clean rejection.
SANITIZER_EXIT = 86


def decoder_env():
    env = dict(os.environ)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        opts = env.get(var, "")
        env[var] = (opts + ":" if opts else "") + "exitcode=%d" % SANITIZER_EXIT
    return env


def run_decoder(path, env):
    with open(path, "rb") as f:
        data = f.read()
    p = subprocess.run([DECODER], input=data, capture_output=True, env=env, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def norm_datetime(s):
    """A comparable form of an RFC 3339 date/time: 'T' separator, 'Z' for a zero offset, no
    trailing zeros in the fraction."""
    s = s.upper().replace(" ", "T")
    m = re.match(r"^(.*?)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", s)
    base, frac, off = m.group(1), m.group(2) or "", m.group(3) or ""
    frac = frac.rstrip("0")
    if frac == ".":
        frac = ""
    if off in ("+00:00", "-00:00"):
        off = "Z"
    return base + frac + off


def is_leaf(v):
    return isinstance(v, dict) and set(v) == {"type", "value"} and isinstance(v["value"], str) \
        and isinstance(v["type"], str)


def same(want, got, where):
    """None when equal, else a short description of the first difference."""
    if is_leaf(want):
        if not is_leaf(got):
            return "%s: expected a %s value, got %r" % (where, want["type"], got)
        if want["type"] != got["type"]:
            return "%s: expected type %s, got %s" % (where, want["type"], got["type"])
        t, a, b = want["type"], want["value"], got["value"]
        if t == "float":
            fa, fb = float(a), float(b)
            if math.isnan(fa) and math.isnan(fb):
                return None
            ok = fa == fb
        elif t == "integer":
            ok = int(a) == int(b)
        elif t.startswith("date") or t.startswith("time"):
            ok = norm_datetime(a) == norm_datetime(b)
        else:
            ok = a == b
        return None if ok else "%s: expected %r, got %r" % (where, a, b)
    if isinstance(want, dict):
        if not isinstance(got, dict) or is_leaf(got):
            return "%s: expected a table" % where
        if set(want) != set(got):
            return "%s: keys differ: expected %s, got %s" % (where, sorted(want), sorted(got))
        for k in want:
            d = same(want[k], got[k], where + "." + k)
            if d:
                return d
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(want) != len(got):
            return "%s: expected an array of %d" % (where, len(want))
        for i, (a, b) in enumerate(zip(want, got)):
            d = same(a, b, "%s[%d]" % (where, i))
            if d:
                return d
        return None
    return "%s: unexpected expectation %r" % (where, want)


def check_valid(suite, rel, env):
    path = os.path.join(suite, rel)
    rc, out, err = run_decoder(path, env)
    if rc != 0:
        return "exit %d: %s" % (rc, err.strip()[:200])
    with open(path[:-len(".toml")] + ".json", encoding="utf-8") as f:
        want = json.load(f)
    try:
        got = json.loads(out)
    except ValueError as e:
        return "output is not JSON: %s" % e
    return same(want, got, "$")


def check_invalid(suite, rel, env):
    rc, out, err = run_decoder(os.path.join(suite, rel), env)
    if rc == 0:
        return "accepted"
    if rc != 1:
        return "exit %d (crash?): %s" % (rc, err.strip()[-300:])
    first = err.splitlines()[0] if err else ""
    if not ERROR_LINE.match(first):
        return "error is not 'line:col: message': %r" % err[:200]
    return None


def main():
    suite = rtlib.shared_path("toml-test", "tests")
    if suite is None or not os.path.exists(os.path.join(suite, "files-toml-1.0.0")):
        rtlib.skip("toml-test suite not found under RT_SHARED_DIR/toml-test/tests")
    if not os.access(DECODER, os.X_OK):
        print("FAIL: decoder not built: %s" % DECODER)
        return 1
    with open(os.path.join(suite, "files-toml-1.0.0"), encoding="utf-8") as f:
        files = [line.strip() for line in f if line.strip().endswith(".toml")]
    valid = [x for x in files if x.startswith("valid/")]
    invalid = [x for x in files if x.startswith("invalid/")]
    env = decoder_env()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        vres = list(pool.map(lambda r: check_valid(suite, r, env), valid))
        ires = list(pool.map(lambda r: check_invalid(suite, r, env), invalid))
    vfail = [(r, d) for r, d in zip(valid, vres) if d]
    ifail = [(r, d) for r, d in zip(invalid, ires) if d]
    crashes = [(r, d) for r, d in ifail if d != "accepted"]
    for r, d in vfail:
        print("valid FAIL %s: %s" % (r, d))
    for r, d in ifail:
        print("invalid FAIL %s: %s" % (r, d))
    vpass, ipass = len(valid) - len(vfail), len(invalid) - len(ifail)
    print("valid: %d/%d passed" % (vpass, len(valid)))
    print("invalid: %d/%d rejected (%.1f%%)" % (ipass, len(invalid),
                                                100.0 * ipass / max(1, len(invalid))))
    ok = not vfail and not crashes and ipass * 100 >= 99 * len(invalid)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
