"""The model servers a night may reach beyond loopback: `[night] model_hosts` in `.pantheon/config.toml`.

A team's model server (llama-server, vLLM or Ollama on a GPU box of its own network) is local to the
night only when a person lists it, as host:port. Nothing here resolves a name: a DNS query at night is
itself traffic off the machine, and a name may resolve anywhere tomorrow. A name counts only through the
address `[night.host_addresses]` pins it to, and the night connects to that address, never to what a
resolver says. Cloud endpoints stay refused whatever the list says: an address that is routable on the
internet, or a known provider's name. Pure: parsing and checking only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

# Hosted model APIs, refused by name whatever a config pins them to: a pin to a private address would
# otherwise let a proxy on the team's network forward the night's prompts to a cloud model.
PROVIDER_DOMAINS = (
    "openai.com",
    "openai.azure.com",
    "anthropic.com",
    "claude.ai",
    "googleapis.com",
    "mistral.ai",
    "groq.com",
    "together.ai",
    "together.xyz",
    "openrouter.ai",
    "deepseek.com",
    "fireworks.ai",
    "cohere.ai",
    "cohere.com",
    "amazonaws.com",
    "perplexity.ai",
    "x.ai",
    "huggingface.co",
    "replicate.com",
    "deepinfra.com",
    "cerebras.ai",
)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class ModelHost:
    """One allowlisted server: as written (`host`, an address or a pinned name), where the night
    connects (`address`) and its port."""

    host: str
    address: str
    port: int

    def label(self) -> str:
        where = f"[{self.host}]" if ":" in self.host else self.host
        return f"{where}:{self.port}" + ("" if self.host == self.address else f" ({self.address})")


def is_provider(name: str) -> bool:
    """Whether `name` is, or is under, a known hosted model API's domain."""
    name = name.rstrip(".").lower()
    return any(name == domain or name.endswith("." + domain) for domain in PROVIDER_DOMAINS)


def private_address(text: str) -> str:
    """`text` as a normalised IP address a team's own network may use; ValueError (the reason) if it is
    not an address, names no single host, or is routable on the internet."""
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{text} names no single host")
    if ip.is_global:
        raise ValueError(f"{text} is a public address: night mode reaches only the team's own network")
    return str(ip)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_host_port(entry: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; ValueError (the reason) otherwise."""
    if "*" in entry or "/" in entry:
        raise ValueError("one host:port, never a wildcard or a network")
    host, sep, port_text = entry.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError("expected host:port (an IPv6 address in brackets: [fd00::5]:8000)")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError("an IPv6 address goes in brackets: [fd00::5]:8000")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return host.strip("[]").rstrip(".").lower(), port


def model_hosts(entries: list[str], pins: dict[str, str]) -> tuple[ModelHost, ...]:
    """The allowlist from its config entries; ValueError naming the first bad entry and why."""
    hosts = []
    for entry in entries:
        try:
            host, port = split_host_port(entry)
            if is_provider(host):
                raise ValueError(f"{host} is a hosted model API: the night never sends prompts there")
            if _is_address(host):
                address = private_address(host)
            elif host in pins:
                address = private_address(pins[host])
            else:
                raise ValueError(
                    f"{host} is a name: pin it to its address in [night.host_addresses] "
                    f'({host} = "10.0.0.5"); the night does not ask a resolver'
                )
        except ValueError as why:
            raise ValueError(f"{entry!r}: {why}") from None
        hosts.append(ModelHost(host=host, address=address, port=port))
    return tuple(hosts)


def host_for(url: str, hosts: tuple[ModelHost, ...]) -> ModelHost | None:
    """The allowlisted server `url` names (by the name as written or by its address, and its port), or
    None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not host or port is None or is_provider(host):
        return None
    for allowed in hosts:
        if allowed.port == port and host in (allowed.host, allowed.address):
            return allowed
    return None
