"""`verifier simulator` and `verifier proxy` as real processes: each prints the address it listens on, the simulator
prints the proxy command that trusts it, and the synchronous openai SDK verifies through that proxy."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import openai
from click.testing import CliRunner

from verifier.cli import main
from verifier.simulator.gateway import FAULTS

ENTRY = [sys.executable, "-c", "from verifier.cli import run; run()"]


def read_until(stream: IO[str], pattern: str, lines: list[str], timeout: float = 60.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise AssertionError("the process ended early: " + "".join(lines))
        lines.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError("timed out: " + "".join(lines))


@contextmanager
def process(args: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(ENTRY + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_simulator_help_lists_every_fault_name() -> None:
    result = CliRunner().invoke(main, ["simulator", "--help"])
    assert result.exit_code == 0
    assert all(name in result.output for name in FAULTS)


def test_the_printed_proxy_command_verifies_an_sdk_completion_against_the_simulator(tmp_path: Path) -> None:
    sim_out: list[str] = []
    with process(["simulator", "--port", "0"], tmp_path) as sim:
        assert sim.stdout is not None
        url = read_until(sim.stdout, r"listening on (http://\S+)", sim_out).group(1)
        command = read_until(sim.stdout, r"proxy:\s+verifier (proxy .*)$", sim_out).group(1)
        assert f"--gateway {url}" in command
        proxy_args = [
            *shlex.split(command),
            "--port",
            "0",
            "--db",
            str(tmp_path / "v.db"),
            "--insecure-no-auth",
            "--workers",
            "1",
        ]
        out: list[str] = []
        with process(proxy_args, tmp_path) as prox:
            assert prox.stdout is not None
            proxy_url = read_until(prox.stdout, r"listening on (http://\S+)", out).group(1)
            sdk = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="sk-simulator-any", max_retries=0)
            raw = sdk.chat.completions.with_raw_response.create(
                model="sim/echo-1", messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.parse().choices[0].message.content == "echo: hi"
            assert raw.headers["X-Verification-Status"] == "pass", out
            verdict_url = f"{proxy_url}/v1/verifications/{raw.headers['X-Verification-Id']}"
            with urllib.request.urlopen(verdict_url, timeout=30) as answer:
                verdict = json.loads(answer.read())
            assert verdict["status"] == "pass"
