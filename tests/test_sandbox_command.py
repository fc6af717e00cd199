"""`vergeet sandbox`: the four fakes stay up with a config beside them until Ctrl-C, so README commands can be tried."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from vergeet.cli import app


def start(directory: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from vergeet.cli import app; app()", "sandbox", "--dir",
                             str(directory), "--people", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_until_ready(process: subprocess.Popen, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "Stop with Ctrl-C" in line:
            return lines
    process.kill()
    raise AssertionError("the sandbox never said it was ready:\n" + "\n".join(lines))


def test_the_sandbox_serves_until_ctrl_c_and_every_printed_command_works(tmp_path):
    folder = tmp_path / "sandbox"
    process = start(folder)
    try:
        lines = wait_until_ready(process)
        config = folder / "vergeet.toml"
        assert config.is_file() and any(str(config) in line for line in lines)
        commands = [line.split(f"--config {config} ", 1)[1] for line in lines if f"--config {config} " in line]
        assert len(commands) >= 6
        runner = CliRunner()
        for command in commands:
            arguments = command.split()
            if arguments[0] == "erase":
                arguments += ["--approve", "--out", str(tmp_path / "certificates")]
            if arguments[0] == "find":
                arguments += ["--out", str(tmp_path / f"{arguments[1]}.html")]
            result = runner.invoke(app, ["--config", str(config), *arguments])
            assert result.exit_code == 0, (command, result.output)
        reports = sorted(tmp_path.glob("*.html"))
        assert len(reports) == 2 and all("Moneybird" in r.read_text() for r in reports)
        assert list((tmp_path / "certificates").glob("erasure-request-*.html"))
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "Sandbox stopped." in remaining


def test_a_folder_with_another_config_is_refused(tmp_path):
    (tmp_path / "vergeet.toml").write_text("[store]\nurl = 'sqlite:///mine.db'\n")
    result = CliRunner().invoke(app, ["sandbox", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "not a sandbox config" in result.output
    assert (tmp_path / "vergeet.toml").read_text().startswith("[store]")
