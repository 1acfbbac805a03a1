"""A model served over the OpenAI-compatible HTTP API (llama-server, vLLM, Ollama).

Whether it is local is derived from its URL, never declared: a loopback address or a unix socket is
local, and so is a server the person allowlisted in `[night] model_hosts` (schema/hosts.py; the
connection then goes to the address the config pins, never to what a resolver says); any other host is
not, and night mode refuses it before anything runs. The server's context
window is not known here: prompts are counted by estimate and fitted to nothing (`Windowless`), and a
prompt the server refuses as too long (llama-server's `exceed_context_size_error`) is a ContextOverflow.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.base import Completion, ContextOverflow, ModelIdentity, Windowless
from pantheon_git.schema.hosts import ModelHost, host_for
from pantheon_git.schema.models import ModelConfig


def url_is_local(url: str, hosts: tuple[ModelHost, ...] = ()) -> bool:
    """unix:// sockets, hosts that are (or only resolve to) loopback addresses, and the allowlisted
    model hosts are local."""
    if host_for(url, hosts) is not None:
        return True
    parts = urlsplit(url)
    if parts.scheme in ("unix", "http+unix"):
        return True
    host = parts.hostname or ""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host != "localhost":
        return False  # a name could resolve anywhere tomorrow: only the well-known one counts
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (llama-server listens on one when its --host ends in .sock)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def evaluated_tokens(data: dict[str, Any]) -> int:
    """Prompt tokens the server evaluated, the rest served from its prompt cache: llama-server says so
    in `timings.prompt_n`, OpenAI-style servers (vLLM) in `usage.prompt_tokens_details.cached_tokens`;
    a server that says neither is taken to have evaluated the whole prompt."""
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens", 0))
    timings = data.get("timings") or {}
    if "prompt_n" in timings:
        return int(timings["prompt_n"])
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    return prompt_tokens - int(cached) if cached is not None else prompt_tokens


def overflow(status: int, payload: bytes) -> ContextOverflow | None:
    """The ContextOverflow a server's refusal stands for (llama-server says so in the error's `type`,
    with the prompt's tokens and its window), or None."""
    if status != 400:
        return None
    try:
        error = json.loads(payload)["error"]
        if error["type"] == "exceed_context_size_error":
            return ContextOverflow(int(error["n_prompt_tokens"]), int(error["n_ctx"]))
    except (ValueError, TypeError, KeyError):  # another shape of refusal: not this one
        pass
    return None


class PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a name at the address the config pins it to (the Host header keeps the name)."""

    def __init__(self, netloc: str, address: str, timeout: float) -> None:
        super().__init__(netloc, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pinned address; the certificate is checked against the name, as written."""

    def __init__(self, netloc: str, address: str, timeout: float) -> None:
        super().__init__(netloc, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class OpenAICompatibleRuntime(Windowless):
    def __init__(
        self, name: str, config: ModelConfig, timeout: float = 600, hosts: tuple[ModelHost, ...] = ()
    ) -> None:
        assert config.url is not None
        self.url = config.url
        self.host = host_for(config.url, hosts)  # an allowlisted server: reached at its pinned address
        self.is_local = url_is_local(config.url, hosts)
        self.context_tokens = config.context_tokens
        self.served_name = config.served_name or name
        self.grammars = list(config.grammars)
        self.timeout = timeout
        self.identity = ModelIdentity(
            name=name,
            engine="openai-compatible",
            seed=config.seed,
            extra={"url": config.url, "local": self.is_local}
            | ({"server": self.host.label()} if self.host is not None else {}),
        )

    def _connection(self) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(self.url)
        if parts.scheme in ("unix", "http+unix"):
            return UnixHTTPConnection(parts.path, self.timeout), "/v1/completions"
        base = parts.path.rstrip("/")
        path = base + ("/completions" if base.endswith("/v1") else "/v1/completions")
        if self.host is not None:
            pinned = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
            return pinned(parts.netloc, self.host.address, self.timeout), path
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.netloc, timeout=self.timeout), path
        return http.client.HTTPConnection(parts.netloc, timeout=self.timeout), path

    def complete(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.served_name,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": max(0.0, temperature),
            "seed": self.identity.seed if seed is None else seed,
        }
        if temperature <= 0:
            body["top_k"] = 1  # greedy on servers whose temperature 0 still samples (llama-server reads it)
        if isinstance(schema, str):
            # A Lark grammar in llguidance's dialect (the code call format): vLLM reads `guided_grammar`,
            # llama-server (built with LLAMA_LLGUIDANCE) a `grammar` marked %llguidance. A server that
            # holds no Lark would decode the turn unconstrained: refused instead (and a night refuses the
            # flow before it runs, night/executors.py).
            if "lark" not in self.grammars:
                raise PantheonError(
                    f"model {self.identity.name}: {self.url} holds no Lark grammar "
                    f"(models.{self.identity.name}.grammars = {self.grammars})"
                )
            body["guided_grammar"] = schema
            body["guided_decoding_backend"] = "guidance"
            body["grammar"] = "%llguidance {}\n" + schema
        elif schema is not None:
            # llama-server reads `json_schema`, vLLM `guided_json`; both ignore what they do not know.
            body["json_schema"] = schema
            body["guided_json"] = schema
        connection, path = self._connection()
        start = time.perf_counter()
        try:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
        except OSError as exc:
            raise PantheonError(f"model {self.identity.name}: {self.url} unreachable: {exc}") from None
        finally:
            connection.close()
        refused = overflow(response.status, payload)
        if refused is not None:
            raise refused
        if response.status != 200:
            raise PantheonError(f"model {self.identity.name}: HTTP {response.status} from {self.url}")
        data = json.loads(payload)
        usage = data.get("usage", {})
        choice = data["choices"][0]
        return Completion(
            text=choice.get("text", ""),
            tokens_in=usage.get("prompt_tokens", 0),
            tokens_out=usage.get("completion_tokens", 0),
            tokens_evaluated=evaluated_tokens(data),
            seconds=time.perf_counter() - start,
            finish_reason=choice.get("finish_reason") or "",
            served_by=str(data.get("model") or ""),
        )
