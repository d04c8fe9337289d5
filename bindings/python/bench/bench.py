"""Cache-hit benchmark of the installed mtlspop package, with MSAL Python measured in the same run.

Prints JSON lines on stdout ({"name","value","unit"[,"peer","peer_value"]}, collected by
./build.sh bench); everything else goes to stderr. Run by ci/python.sh bench in a fresh venv
holding the wheel and msal, with MTLSPOP_CLI pointing at build/mtlspop.

  python_cache_hit_ns      ManagedIdentityClient.acquire_token on a cached Bearer token from a
                           loopback App Service endpoint (the emulator's), and, as the peer,
                           msal.ManagedIdentityClient.acquire_token_for_client on its cached token
                           from the same endpoint: the same call, the same source
  python_cache_hit_pop_ns  acquire_token on a cached mTLS PoP token (IMDSv2); MSAL Python has no
                           mTLS PoP to compare
Each value is the median of RUNS runs; ours and MSAL's runs alternate, so both see the same
machine state.
"""

import json
import os
import statistics
import subprocess
import sys
import time

import msal
import requests

import mtlspop

CLI = os.environ["MTLSPOP_CLI"]
RESOURCE = "api://mtlspop-emulator"
RUNS = 7
RUN_SECONDS = 0.3
SOURCE_VARS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT",
               "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST")


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def emulator(*args):
    proc = subprocess.Popen([CLI, "emulator", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    info = json.loads(proc.stdout.readline())
    return proc, info


def use_env(env):
    for k in SOURCE_VARS:
        os.environ.pop(k, None)
    os.environ.update(env)


def per_call_ns(fn, n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n


def calibrate(fn):
    n = 100
    while True:
        t = per_call_ns(fn, n)
        if t * n >= 50e6 or n >= 10_000_000:  # 50 ms
            return max(100, int(n * RUN_SECONDS * 1e9 / (t * n) * 1))
        n *= 4


def measure(named):
    """Alternating runs of each function; the median ns per call of each."""
    sizes = {name: calibrate(fn) for name, fn in named.items()}
    samples = {name: [] for name in named}
    for _ in range(RUNS):
        for name, fn in named.items():
            samples[name].append(per_call_ns(fn, sizes[name]))
    for name in named:
        say(f"  {name}: runs {', '.join(f'{s:.0f}' for s in samples[name])} ns "
            f"({sizes[name]} calls each)")
    return {name: statistics.median(s) for name, s in samples.items()}


def main():
    imds_proc, imds = emulator()
    app_proc, app = emulator("--source", "appservice")
    try:
        # mTLS PoP on IMDSv2 (the client reads the environment when it is created).
        use_env(imds["env"])
        pop_client = mtlspop.ManagedIdentityClient(mtls_pop=True)
        assert pop_client.acquire_token(RESOURCE).token_type == "mtls_pop"
        assert pop_client.acquire_token(RESOURCE).token_source == "cache"

        # Bearer from the App Service endpoint, for us and for MSAL Python.
        use_env(app["env"])
        ours = mtlspop.ManagedIdentityClient()
        assert ours.acquire_token(RESOURCE).token_source == "identity_provider"
        hit = ours.acquire_token(RESOURCE)
        assert hit.token_source == "cache" and hit.token_type == "Bearer"

        session = requests.Session()
        session.verify = app["env"]["SSL_CERT_FILE"]
        peer = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(),
                                          http_client=session)
        first = peer.acquire_token_for_client(resource=RESOURCE)
        assert "access_token" in first, first.get("error_description", first)
        second = peer.acquire_token_for_client(resource=RESOURCE)
        assert second.get("token_source") == "cache", second.get("token_source")

        say(f"mtlspop {mtlspop.__version__} vs msal {msal.__version__}, Python "
            f"{sys.version.split()[0]}; median of {RUNS} alternating runs")
        result = measure({
            "ours_bearer": lambda: ours.acquire_token(RESOURCE),
            "msal": lambda: peer.acquire_token_for_client(resource=RESOURCE),
            "ours_pop": lambda: pop_client.acquire_token(RESOURCE),
        })
        ours.close()
        pop_client.close()
    finally:
        for proc in (imds_proc, app_proc):
            proc.stdin.close()
            proc.wait(10)

    lines = [
        {"name": "python_cache_hit_ns", "value": round(result["ours_bearer"], 1), "unit": "ns",
         "peer": "msal_python_cache_hit_ns", "peer_value": round(result["msal"], 1)},
        {"name": "python_cache_hit_pop_ns", "value": round(result["ours_pop"], 1), "unit": "ns"},
    ]
    for line in lines:
        print(json.dumps(line), flush=True)
    say(f"python_cache_hit_ns {result['ours_bearer']:.0f} ns (target <= 1500), "
        f"msal_python_cache_hit_ns {result['msal']:.0f} ns: "
        f"{result['msal'] / result['ours_bearer']:.1f}x; "
        f"python_cache_hit_pop_ns {result['ours_pop']:.0f} ns")


if __name__ == "__main__":
    main()
