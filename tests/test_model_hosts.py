"""Self-hosted model servers at night (`[night] model_hosts`), attacked as a config writer or a resolver
would: a wildcard, a public address, a hosted API's name, a name left to DNS, a pin to the internet; the
egress guard lets exactly the listed address:port pairs through; a night served by an allowlisted server
in a network namespace this test makes (the server at 10.77.0.5, a hosts file that sends its name to a
public address) records which server answered each turn; an unlisted server fails its task in one line
before any step runs. Traffic stays inside the namespaces the tests make."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pygit2
import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.ops.demo import SPEC, make_sample
from pantheon_git.runtime.openai_compat import OpenAICompatibleRuntime, url_is_local
from pantheon_git.schema.config import parse_config
from pantheon_git.schema.hosts import ModelHost, host_for, model_hosts
from pantheon_git.schema.models import ModelConfig
from pantheon_git.store.traces import read_trace
from tests.conftest import REPO_ROOT, completions_server, git, in_private_netns, pantheon

needs_netns = pytest.mark.skipif(
    not os.environ.get("CI")  # in CI a missing namespace fails loudly instead of skipping
    and (shutil.which("unshare") is None or subprocess.run(["unshare", "-rnm", "true"]).returncode != 0),
    reason="unprivileged network and mount namespaces (unshare -rnm) are not available here",
)
GPU_BOX = ModelHost(host="gpu-box", address="10.77.0.5", port=8000)


@pytest.mark.parametrize(
    ("entry", "pins", "reason"),
    [
        ("*:8000", {}, "never a wildcard"),
        ("10.0.0.0/8", {}, "never a wildcard or a network"),
        ("8.8.8.8:8000", {}, "8.8.8.8 is a public address"),
        ("[2001:4860::8888]:443", {}, "is a public address"),
        ("0.0.0.0:8000", {}, "names no single host"),
        ("gpu-box:8000", {}, "pin it to its address"),
        ("gpu-box:8000", {"gpu-box": "1.1.1.1"}, "1.1.1.1 is a public address"),
        ("api.openai.com:443", {"api.openai.com": "10.0.0.5"}, "is a hosted model API"),
        ("eu.api.anthropic.com:443", {"eu.api.anthropic.com": "10.0.0.5"}, "is a hosted model API"),
        ("10.0.0.5", {}, "expected host:port"),
        ("10.0.0.5:70000", {}, "out of range"),
        ("fd00::5:8000", {}, "in brackets"),
    ],
)
def test_a_bad_model_host_is_refused_with_its_reason(entry: str, pins: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace(".", r"\.")):
        model_hosts([entry], pins)


def test_private_addresses_and_pinned_names_are_allowed() -> None:
    hosts = model_hosts(
        ["10.0.0.5:8000", "gpu-box:8000", "[fd00::5]:8080", "100.101.102.103:11434", "3090-box:8000"],
        {"gpu-box": "192.168.1.20", "3090-box": "10.0.0.9"},
    )
    assert [host.label() for host in hosts] == [
        "10.0.0.5:8000",
        "gpu-box:8000 (192.168.1.20)",
        "[fd00::5]:8080",
        "100.101.102.103:11434",  # a tailnet (CGNAT) address is the team's own too
        "3090-box:8000 (10.0.0.9)",  # a name may start with a digit
    ]


def test_a_url_is_local_only_at_a_listed_host_and_port() -> None:
    hosts = (GPU_BOX,)
    assert url_is_local("http://gpu-box:8000/v1", hosts)
    assert url_is_local("http://10.77.0.5:8000", hosts)  # the pinned address itself
    assert not url_is_local("http://gpu-box:8001/v1", hosts)  # another port of the same machine
    assert not url_is_local("http://10.77.0.6:8000", hosts)
    assert not url_is_local("http://gpu-box/v1", hosts)  # port 80
    assert not url_is_local("http://gpu-box:8000/v1")  # no allowlist: only loopback
    assert host_for("https://api.openai.com:8000", (ModelHost("api.openai.com", "10.0.0.5", 8000),)) is None


def test_the_config_file_refuses_a_public_model_host_in_one_line() -> None:
    text = '[night]\nmax_tasks = 3\nmodel_hosts = ["8.8.8.8:8000"]\n'
    with pytest.raises(PantheonError) as refused:
        parse_config(text, ".pantheon/config.toml")
    assert str(refused.value) == (
        ".pantheon/config.toml:3: night.model_hosts: '8.8.8.8:8000': 8.8.8.8 is a public address: "
        "night mode reaches only the team's own network"
    )


@needs_netns
def test_the_egress_guard_lets_exactly_the_listed_pairs_through() -> None:
    done = in_private_netns(
        """
        import socket, subprocess
        for address in ("10.77.0.5", "10.77.0.6"):
            subprocess.run(["ip", "addr", "add", address + "/32", "dev", "lo"], check=True)
        listeners = []
        for address, port in (("10.77.0.5", 8000), ("10.77.0.5", 8001), ("10.77.0.6", 8000)):
            server = socket.create_server((address, port))
            listeners.append(server)
        from pantheon_git.night.policy import EgressBlocked, block_egress
        from pantheon_git.schema.hosts import ModelHost
        block_egress([ModelHost("gpu-box", "10.77.0.5", 8000)])
        for address, port in (("10.77.0.5", 8000), ("10.77.0.5", 8001), ("10.77.0.6", 8000)):
            try:
                socket.create_connection((address, port), timeout=2).close()
                print(address, port, "connected")
            except EgressBlocked:
                print(address, port, "blocked")
        try:
            socket.getaddrinfo("gpu-box", 8000)
            print("lookup answered")
        except EgressBlocked:
            print("lookup blocked")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "10.77.0.5 8000 connected",
        "10.77.0.5 8001 blocked",
        "10.77.0.6 8000 blocked",
        "lookup blocked",  # the night never asks a resolver, even for a listed name
    ]


def _sample(path: Path, *, url: str, config_lines: str, grammars: list[str] | None = None) -> Path:
    """The demo's sample repository with its `default` model served at `url` and `config_lines` added
    to [night] (committed, as a person would)."""
    make_sample(path)
    assert pantheon(path, "init").returncode == 0
    (path / ".pantheon" / "models.toml").write_text(
        f'[models.default]\nengine = "openai-compatible"\nurl = "{url}"\nserved_name = "gemma"\n'
        + (f"grammars = {json.dumps(grammars)}\n" if grammars else "")
    )
    config = path / ".pantheon" / "config.toml"
    text = config.read_text()
    assert "model_hosts = []\n" in text  # what init writes
    config.write_text(text.replace("model_hosts = []\n", config_lines, 1))
    git(path, "add", ".pantheon")
    git(path, "commit", "-q", "-m", "pantheon: the team's model server")
    (path / "mul.spec.toml").write_text(SPEC)
    queued = pantheon(path, "queue", "mul.spec.toml")
    assert queued.returncode == 0, queued.stderr
    return path


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        (  # a server the allowlist does not name
            "http://10.77.0.6:8000",
            "night mode is local-only; these agents use a non-local runtime: implementer (model default at "
            "http://10.77.0.6:8000), planner (model default at http://10.77.0.6:8000)",
        ),
        (  # a listed server that holds no Lark grammar, for agents whose calls need one
            "http://10.77.0.5:8000",
            'agent implementer: its calls (call_format = "code") are held by a Lark grammar, which model '
            "default's server at http://10.77.0.5:8000 does not take "
            "(models.default.grammars = ['json-schema'])",
        ),
    ],
)
def test_a_server_the_night_cannot_use_fails_its_task_in_one_line_before_any_step(
    tmp_path: Path, url: str, refusal: str
) -> None:
    repo = _sample(tmp_path / "calc", url=url, config_lines='model_hosts = ["10.77.0.5:8000"]\n')
    night = pantheon(repo, "night")
    assert night.returncode != 0
    assert f"task mul failed: {refusal}" in night.stdout
    assert git(repo, "branch", "--list", "pantheon/*").strip() == ""  # no step ran


def test_a_model_host_name_left_to_the_resolver_stops_the_night_before_anything(tmp_path: Path) -> None:
    hosts = 'model_hosts = ["gpu-box:8000"]\n'
    repo = _sample(tmp_path / "calc", url="http://gpu-box:8000", config_lines=hosts)
    refs_before = git(repo, "for-each-ref")
    night = pantheon(repo, "night")
    assert night.returncode == 2
    assert night.stderr.strip().splitlines() == [
        "git pantheon night: .pantheon/config.toml:23: night.model_hosts: 'gpu-box:8000': gpu-box is a name: "
        'pin it to its address in [night.host_addresses] (gpu-box = "10.0.0.5"); the night does not ask a '
        "resolver"
    ]
    assert git(repo, "for-each-ref") == refs_before


@needs_netns
def test_a_night_served_by_an_allowlisted_host_records_which_server_answered(tmp_path: Path) -> None:
    repo = _sample(
        tmp_path / "calc",
        url="http://gpu-box:8000/v1",
        config_lines='model_hosts = ["gpu-box:8000"]\n',
        grammars=["json-schema", "lark"],  # runtime/serve.py holds the code format's Lark grammars
    )
    config = repo / ".pantheon" / "config.toml"
    config.write_text(config.read_text() + '\n[night.host_addresses]\ngpu-box = "10.77.0.5"\n')
    git(repo, "commit", "-q", "-am", "pin gpu-box")
    # What a resolver would say: gpu-box is a public machine. The night must use the pin, not this.
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n8.8.8.8 gpu-box\n")
    server_log = tmp_path / "server.log"
    script = textwrap.dedent(
        f"""\
        set -e
        ip link set lo up
        ip addr add 10.77.0.5/32 dev lo
        mount --bind {hosts} /etc/hosts
        {sys.executable} -m pantheon_git.runtime.serve --host 10.77.0.5 --port 8000 \\
            --served-name gemma-served --repo {tmp_path} > {server_log} 2>&1 &
        for _ in $(seq 600); do
            {sys.executable} -c 'import socket; socket.create_connection(("10.77.0.5", 8000), 1)' \\
                2>/dev/null && break
            sleep 0.2
        done
        cd {repo}
        set +e
        {sys.executable} -m pantheon_git night
        echo "night exit $?"
        kill %1
        """
    )
    done = subprocess.run(
        ["unshare", "-rnm", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert "night exit" in done.stdout, done.stdout + done.stderr
    branch = "pantheon/mul/1"
    steps = git(repo, "rev-list", "--reverse", f"main..{branch}").split()
    assert steps, done.stdout + done.stderr
    served = []
    store = pygit2.Repository(str(repo))
    for rev in steps:
        trace = read_trace(store, pygit2.Oid(hex=rev), expand=True)
        assert trace is not None
        assert "model hosts gpu-box:8000 (10.77.0.5)" in trace["policy"]["egress"]
        if "agent_trace" in trace:  # a model agent's step: which server, which model answered each turn
            model = trace["agent_trace"]["model"]
            assert model["url"] == "http://gpu-box:8000/v1"
            assert model["server"] == "gpu-box:8000 (10.77.0.5)"
            served += [turn["served_by"] for turn in trace["agent_trace"]["turns"]]
    assert served and set(served) == {"gemma-served"}
    # Every request reached the pinned address (the server saw them), none the resolver's answer.
    assert server_log.read_text().count("POST /v1/completions") == len(served)


def test_a_lark_grammar_goes_to_a_server_that_holds_it_and_never_to_one_that_does_not() -> None:
    bodies: list[dict[str, Any]] = []
    server = completions_server({"model": "m", "choices": [{"text": "ok", "finish_reason": "stop"}]}, bodies)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        lark = 'start: "edit " /[a-z]+/'
        holds = ModelConfig(engine="openai-compatible", url=url, grammars=["json-schema", "lark"])
        assert OpenAICompatibleRuntime("m", holds).complete("p", schema=lark, max_tokens=4).text == "ok"
        assert bodies[0]["guided_grammar"] == lark
        assert bodies[0]["grammar"] == "%llguidance {}\n" + lark
        plain = ModelConfig(engine="openai-compatible", url=url)
        with pytest.raises(PantheonError, match="holds no Lark grammar"):
            OpenAICompatibleRuntime("m", plain).complete("p", schema=lark, max_tokens=4)
        assert len(bodies) == 1  # refused before anything was sent
    finally:
        server.shutdown()
