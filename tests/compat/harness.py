"""Start and stop a real `palisade serve` process for the compatibility suites.

Every test module gets its own server (module-scoped fixtures in conftest.py) on a
free loopback port with a fresh temporary data directory. The binary comes from
$PALISADE_BIN (default: target/release/palisade under the repository root); it is
never built here.
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ACCESS_KEY_ID = "compatAccessKeyId0001"
ACCESS_KEY_SECRET = "compatAccessKeySecret0001"
ACCOUNT_ID = "1234567890123456"
ACCOUNT_NAME = "test@aliyun.com"
REGION = "cn-hangzhou"

_LISTEN_RE = re.compile(r"palisade listening on http://127\.0\.0\.1:(\d+)")

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
              "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


def clear_proxy_env():
    """The Python SDKs read the proxy variables themselves: talk to loopback directly."""
    for name in PROXY_VARS:
        os.environ.pop(name, None)


def palisade_bin():
    path = os.environ.get("PALISADE_BIN") or os.path.join(REPO_ROOT, "target", "release", "palisade")
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(
            "palisade binary not found at %s: build it with `cargo build --release -p palisade` "
            "or point $PALISADE_BIN at it" % path)
    return path


def fresh_database():
    """With $PALISADE_TEST_PG_URL (an admin URL), a new empty PostgreSQL database for one
    server, as a URL; otherwise None and the server uses SQLite in its data directory."""
    admin = os.environ.get("PALISADE_TEST_PG_URL")
    if not admin:
        return None
    import uuid
    name = "compat_" + uuid.uuid4().hex
    subprocess.run(["psql", admin, "-q", "-c", "CREATE DATABASE %s" % name], check=True,
                   stdin=subprocess.DEVNULL)
    return admin.rsplit("/", 1)[0] + "/" + name


class PalisadeServer(object):
    """One running `palisade serve` process."""

    def __init__(self, extra_args=(), access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET):
        self.extra_args = list(extra_args)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.data_dir = None
        self.proc = None
        self.port = None
        self.stdout_lines = []
        self._log = None
        self._drain = None
        self.database_url = None

    def _db_args(self):
        return ["--database-url", self.database_url] if self.database_url else []

    @property
    def endpoint(self):
        """host:port, as the core and tea SDKs want it."""
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        binary = palisade_bin()
        self.data_dir = tempfile.mkdtemp(prefix="palisade-compat-")
        # Only the options given here: drop proxies and any PALISADE_* setting of the caller
        # (serve reads PALISADE_RULE_QUOTA, PALISADE_DUPLICATE_RULE, ... from the environment).
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and not k.startswith("PALISADE_")}
        env["PALISADE_ACCESS_KEY_ID"] = self.access_key_id
        env["PALISADE_ACCESS_KEY_SECRET"] = self.access_key_secret
        self._log = open(os.path.join(self.data_dir, "server.stderr.log"), "w+b")
        self.database_url = fresh_database()
        cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir",
               os.path.join(self.data_dir, "data")] + self._db_args() + self.extra_args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env)
        # Block until the server announces its port (or exits): no wall-clock limit.
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                raise RuntimeError("palisade serve exited (status %s) before listening; cmd=%r\nstdout:\n%s\nstderr:\n%s"
                                   % (self.proc.returncode, cmd, "".join(self.stdout_lines), self.stderr_text()))
            text = line.decode("utf-8", "replace")
            self.stdout_lines.append(text)
            match = _LISTEN_RE.search(text)
            if match:
                self.port = int(match.group(1))
                break
        # Keep reading stdout so a chatty server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        return self

    def _drain_stdout(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.stdout_lines.append(line.decode("utf-8", "replace"))

    def stderr_text(self):
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def add_account(self, name):
        """`palisade account add` on the running server's data dir; returns its JSON."""
        import json
        env = {k: v for k, v in os.environ.items() if not k.startswith("PALISADE_")}
        cmd = [palisade_bin(), "account", "add", "--data-dir", os.path.join(self.data_dir, "data"),
               "--name", name] + self._db_args()
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env).stdout
        return json.loads(out.decode("utf-8"))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.data_dir and os.environ.get("PALISADE_COMPAT_KEEP_DATA") != "1":
            shutil.rmtree(self.data_dir, ignore_errors=True)
