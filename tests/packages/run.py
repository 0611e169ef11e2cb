#!/usr/bin/env python3
"""The packages as a user gets them: `make test-packages`.

For each language, in a new directory outside the repository, runs the README's own lines
(its `<!-- test-packages: LANG install -->` and `<!-- test-packages: LANG run -->` blocks):
pack the artifact a registry would serve, install it into an empty project or venv, then
run that language's example server and client against each other. Each install block is
followed by the run block; a line ending in `&` starts a server, and the next line runs
once it prints "listening on". The lines run as written, in bash, with $RILL set to the
repository and the port 50051 replaced by a free one. Then a few checks a user would
notice: no EBADENGINE from npm, a clear line when cargo is missing, a static C client,
`cargo publish --dry-run`, warning-free docs.

Builds share one cargo target directory (--target-dir/packages/cargo), and cargo's release
profile is made cheap (no optimization, no LTO): this tests packaging, not speed.
"""

import argparse
import filecmp
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LANGS = ["c", "rust", "python", "node"]
MARK = re.compile(r"<!-- test-packages: (\w+) (install|run) -->\s*\n```sh\n(.*?)```", re.S)

PRELUDE = r"""
set -eo pipefail
set -m  # each server in a process group of its own, stopped with it
__servers=()
__stop_servers() {
  for p in "${__servers[@]}"; do kill -- -"$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  __servers=()
}
trap __stop_servers EXIT
__wait_listening() {  # pid log: a server may compile first (cargo run), hence no short limit
  __servers+=("$1")
  for _ in $(seq 1 6000); do
    grep -q "listening on" "$2" && { cat "$2"; return 0; }
    kill -0 "$1" 2>/dev/null || { cat "$2"; echo "the server exited before listening"; return 1; }
    sleep 0.1
  done
  cat "$2"; echo "the server did not listen in 10 minutes"; return 1
}
"""


def blocks(readme):
    """{lang: {"install": [[line, ...], ...], "run": [line, ...]}} from the README's marked
    blocks; a line continued with a backslash is one line."""
    out = {}
    for lang, kind, body in MARK.findall(readme):
        lines = body.replace("\\\n", " ").splitlines()
        lines = [ln for ln in lines if ln.strip()]
        entry = out.setdefault(lang, {"install": [], "run": None})
        if kind == "install":
            entry["install"].append(lines)
        else:
            entry["run"] = lines
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(lang, entry, logs):
    """The bash script: each install block, then the run block on a free port, its servers
    stopped before the next install block."""
    parts, n = [PRELUDE], 0
    for install in entry["install"]:
        port = str(free_port())
        for line in install + entry["run"] + ["__stop_servers"]:
            line = line.replace("50051", port)
            if line != "__stop_servers":
                parts.append("echo " + shlex.quote("$ " + line.strip()))
            if line.rstrip().endswith("&"):
                n += 1
                log = os.path.join(logs, f"{lang}-server-{n}.log")
                parts.append(f"{line.rstrip()[:-1]} > {log} 2>&1 &")
                parts.append(f'__wait_listening $! {log}')
            else:
                parts.append(line)
    return "\n".join(parts) + "\n"


class Suite:
    def __init__(self, args):
        self.args = args
        self.passed, self.failed = [], []
        self.logs = os.path.join(args.target_dir, "packages", "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="rillrpc-packages-")
        self.env = dict(os.environ)
        self.env.update(
            RILL=REPO,
            CARGO_TARGET_DIR=os.path.join(args.target_dir, "packages", "cargo"),
            CARGO_PROFILE_RELEASE_OPT_LEVEL="0",
            CARGO_PROFILE_RELEASE_LTO="false",
            CARGO_PROFILE_RELEASE_CODEGEN_UNITS="16",
            CARGO_PROFILE_RELEASE_DEBUG="false",
            CARGO_PROFILE_DEV_DEBUG="false",
            CARGO_INCREMENTAL="0",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            NPM_CONFIG_FUND="false",
            NPM_CONFIG_AUDIT="false",
            NPM_CONFIG_UPDATE_NOTIFIER="false",
        )
        self.env.pop("VIRTUAL_ENV", None)

    def check(self, name, fn):
        t = time.monotonic()
        try:
            fn()
        except Exception as e:  # every failure is reported the same way: one line, then on
            self.failed.append(name)
            print(f"FAIL {name}: {e}", flush=True)
            return
        self.passed.append(name)
        print(f"ok   {name} ({time.monotonic() - t:.0f} s)", flush=True)

    def run(self, name, cmd, cwd, env=None, expect=0):
        """Runs cmd (a list, or a bash script) with its output in a log; returns the output."""
        log = os.path.join(self.logs, f"{name}.log")
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else cmd
        with open(log, "w") as f:
            p = subprocess.Popen(argv, cwd=cwd, env=env or self.env, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                rc = p.wait(timeout=self.args.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                rc = "timeout"
        out = open(log, errors="replace").read()
        if rc != expect:
            tail = "\n".join("    " + ln for ln in out.splitlines()[-40:])
            raise RuntimeError(f"exit {rc} (want {expect}); log {log}, its end:\n{tail}")
        return out

    def lang(self, name, entry):
        cwd = os.path.join(self.work, name)
        os.makedirs(cwd)
        if not entry["install"] or not entry["run"]:
            raise RuntimeError(f"README.md has no '{name} install' or no '{name} run' block")
        out = self.run(name, script(name, entry, self.logs), cwd)
        if out.count("all ok") != len(entry["install"]):
            raise RuntimeError(f"the client did not say 'all ok' after each install (log {self.logs}/{name}.log)")
        return cwd, out


def readelf_needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\).*\[(.*)\]", out)


def check_c(s, entry):
    cwd, _ = s.lang("c", entry)
    if not any(n.startswith("librillrpc") for n in readelf_needed(os.path.join(cwd, "server"))):
        raise RuntimeError("the server is not linked to librillrpc.so")
    if any(n.startswith("librillrpc") for n in readelf_needed(os.path.join(cwd, "client"))):
        raise RuntimeError("the static client needs librillrpc.so")


def check_rust(s, entry):
    s.lang("rust", entry)


def check_crate(s):
    """What the published crate holds: its README and examples, not the repository's tests."""
    s.run("rust-package", ["cargo", "package", "--allow-dirty", "-p", "rillrpc", "--no-verify"], REPO)
    crate = glob.glob(os.path.join(s.env["CARGO_TARGET_DIR"], "package", "rillrpc-*.crate"))
    files = subprocess.run(["tar", "tzf", max(crate, key=os.path.getmtime)], capture_output=True, text=True,
                           check=True).stdout.split()
    names = {f.split("/", 1)[1] for f in files}
    for want in ["README.md", "examples/client.rs", "examples/server.rs", "src/lib.rs"]:
        if want not in names:
            raise RuntimeError(f"the crate has no {want}")
    if any(n.startswith("tests/") for n in names):
        raise RuntimeError("the crate carries tests/, which need the repository's testkit")


def check_docs(s):
    env = dict(s.env, RUSTDOCFLAGS="-D warnings", CARGO_TARGET_DIR=s.args.target_dir)
    s.run("rust-doc", ["cargo", "doc", "-p", "rillrpc", "--no-deps"], REPO, env=env)


def check_python(s, entry):
    cwd, _ = s.lang("python", entry)
    if not glob.glob(os.path.join(cwd, "**", "rillrpc-*-abi3-*.whl"), recursive=True):
        raise RuntimeError("no abi3 wheel was built")


def check_node(s, entry):
    cwd, out = s.lang("node", entry)
    if "EBADENGINE" in out:
        raise RuntimeError("npm warned EBADENGINE")
    for pkg in glob.glob(os.path.join(cwd, "**", "node_modules", "rillrpc"), recursive=True):
        prebuilt = os.path.exists(os.path.join(os.path.dirname(pkg), "rillrpc-linux-x64-gnu"))
        if prebuilt and os.path.exists(os.path.join(pkg, "native")):
            raise RuntimeError(f"{pkg} built from source although rillrpc-linux-x64-gnu is installed")
    s.node_tarballs = sorted(glob.glob(os.path.join(cwd, "**", "rillrpc-*.tgz"), recursive=True))


def check_no_cargo(s):
    """Without a working cargo: the prebuilt package installs; alone, the main one fails in one line."""
    main = [t for t in s.node_tarballs if re.search(r"rillrpc-\d", os.path.basename(t))]
    plat = [t for t in s.node_tarballs if "linux-x64-gnu" in t]
    if not main or not plat:
        raise RuntimeError(f"the node block packed no main and platform tarballs: {s.node_tarballs}")
    shim = os.path.join(s.work, "no-cargo-bin")
    os.makedirs(shim, exist_ok=True)
    with open(os.path.join(shim, "cargo"), "w") as f:
        f.write("#!/bin/sh\nexit 127\n")
    os.chmod(os.path.join(shim, "cargo"), 0o755)
    env = dict(s.env, PATH=shim + os.pathsep + s.env["PATH"])
    for name, tarballs, expect in [("prebuilt", [plat[0], main[0]], 0), ("source", [main[0]], 1)]:
        cwd = os.path.join(s.work, f"no-cargo-{name}")
        os.makedirs(cwd)
        s.run(f"node-no-cargo-{name}-init", ["npm", "init", "-y"], cwd, env=env)
        out = s.run(f"node-no-cargo-{name}", ["npm", "install", *tarballs], cwd, env=env, expect=expect)
        if expect == 0:
            s.run(f"node-no-cargo-{name}-load", ["node", "-e", "require('rillrpc')"], cwd, env=env)
        elif "rillrpc: building the native addon needs a Rust toolchain" not in out:
            raise RuntimeError("npm install without cargo failed without saying that cargo is needed")


def check_proto(s):
    shared = os.path.join(os.environ.get("RILL_SHARED", os.path.join(REPO, "..", "shared")), "idl", "echo.proto")
    if os.path.exists(shared) and not filecmp.cmp(shared, os.path.join(REPO, "examples", "echo.proto"), shallow=False):
        raise RuntimeError(f"examples/echo.proto differs from {shared}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")))
    ap.add_argument("--only", action="append", choices=LANGS, help="one language (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary projects")
    ap.add_argument("--timeout", type=float, default=3600, help="a hang guard per step, seconds")
    args = ap.parse_args()
    s = Suite(args)
    print(f"test-packages: projects in {s.work}, logs in {s.logs}", flush=True)
    found = blocks(open(os.path.join(REPO, "README.md")).read())
    entry = lambda lang: found.get(lang, {"install": [], "run": None})  # noqa: E731
    langs = args.only or LANGS
    s.check("examples/echo.proto is the shared one", lambda: check_proto(s))
    if "c" in langs:
        s.check("c: make install, pkg-config shared and static, example client x server", lambda: check_c(s, entry("c")))
    if "rust" in langs:
        s.check("rust: the .crate holds README and examples, no tests", lambda: check_crate(s))
        s.check("rust: cargo doc without warnings", lambda: check_docs(s))
        s.check("rust: cargo publish --dry-run", lambda: s.run(
            "rust-publish", ["cargo", "publish", "--dry-run", "--allow-dirty", "-p", "rillrpc"], REPO))
        s.check("rust: the packaged crate in a new project, example client x server", lambda: check_rust(s, entry("rust")))
    if "python" in langs:
        s.check("python: sdist and abi3 wheel, each in a fresh venv, example client x server",
                lambda: check_python(s, entry("python")))
    if "node" in langs:
        s.node_tarballs = []
        s.check("node: npm pack, install from source and prebuilt, example client x server",
                lambda: check_node(s, entry("node")))
        s.check("node: without cargo, the prebuilt package installs and the source one fails in one line",
                lambda: check_no_cargo(s))
    if not args.keep:
        shutil.rmtree(s.work, ignore_errors=True)
    print(f"test-packages: {len(s.passed)} passed, {len(s.failed)} failed", flush=True)
    sys.exit(1 if s.failed else 0)


if __name__ == "__main__":
    main()
