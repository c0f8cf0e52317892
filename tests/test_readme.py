"""The README's examples run as printed against ``make run``'s demo region.

The runnable examples are the README's ``console`` blocks: a line starting with
``$ `` is a command, the lines after it (up to the next ``$ ``) are what it prints.
They run in order, in one working directory, against the real server started as
the Makefile's ``run`` target starts it (a subprocess on a free loopback port, a
fresh ``var/hemsync.db``, ``--demo``), with the installed ``hemsync`` and
``hemsync-server`` on the PATH. Each command must exit 0 and print what the README
shows, read with the conventions the README states for its readers:

- A word in capitals ending in ``_ID`` or ``_TOKEN`` in a command's output binds
  to the id or token printed there (the first time it appears; afterwards it must
  be that value again). In later commands the word, bare or as ``"$WORD"``, is
  replaced by that value: bare words textually, ``$WORD`` through the environment.
- ``…`` matches any text within a line; a line of only ``…`` any number of lines.
  Runs of white space count as one space; blank lines are ignored.
- An output line starting with ``Error: `` means the command is expected to fail:
  it must exit non-zero, and its output is then stdout followed by stderr.
- ``127.0.0.1:5000`` is the test server's address (its port is a free one).
- ``export NAME=VALUE`` sets NAME for the commands after it.
- ``echo "$X_TOKEN" | hemsync login ...`` is performed by this harness, which
  knows the token, in the form the installed CLI supports: as printed (the token
  on stdin), or with ``--token`` where the CLI still requires that option.
"""

import dataclasses
import os
import pathlib
import queue
import re
import shlex
import subprocess
import sys
import threading
import time

import pytest
import requests

from proof.server_process import free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ADDRESS = "127.0.0.1:5000"
ELLIPSIS = "…"
PLACEHOLDER = re.compile(r"(?<![\w$])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_(?:ID|TOKEN))\b")
VALUE_PATTERNS = {
    "ID": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "TOKEN": r"[A-Za-z0-9_-]{20,}",
}
LOGIN = re.compile(r'^echo "\$(?P<variable>\w+)" \| (?P<login>hemsync login .*)$')
EXPORT = re.compile(r"^export (?P<name>[A-Za-z_]\w*)=(?P<value>\S+)$")
COMMAND_TIMEOUT = 90
SERVER_TIMEOUT = 60


@dataclasses.dataclass
class Example:
    """One ``$ `` command of the README, the output it shows, and where it is."""

    command: str
    expected: list
    line: int

    @property
    def expects_failure(self):
        """Whether the README shows this command failing (an ``Error:`` line)."""
        return any(line.startswith("Error: ") for line in self.expected)


def readme_examples(text):
    """The commands of the README's ``console`` blocks, in order, each with its shown output."""
    found, in_block = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() == "```console" and not in_block
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            found.append(Example(line[2:].strip(), [], number))
        elif found and line.strip():
            found[-1].expected.append(line)
        elif line.strip():
            raise AssertionError(f"README line {number}: output before the block's first $ command")
    return found


def _collapse(line):
    return " ".join(line.split())


def _line_pattern(expected, bound):
    """A regex for one shown line: literal text, ``…`` as any text, placeholders bound or binding."""
    parts, named = [], set()
    tokens = re.compile(f"({ELLIPSIS})|{PLACEHOLDER.pattern}")
    position = 0
    for found in tokens.finditer(expected):
        parts.append(re.escape(expected[position:found.start()]))
        position = found.end()
        name = found.group(2)
        if name is None:
            parts.append(".*?")
        elif name in bound:
            parts.append(re.escape(bound[name]))
        elif name in named:
            parts.append(f"(?P={name})")
        else:
            named.add(name)
            parts.append(f"(?P<{name}>{VALUE_PATTERNS[name.rsplit('_', 1)[1]]})")
    parts.append(re.escape(expected[position:]))
    return re.compile("".join(parts))


def match_output(expected, actual, bound):
    """The placeholders bound by matching ``actual`` output lines to the shown ones, or None if they differ."""
    shown = [_collapse(line) for line in expected if line.strip()]
    printed = [_collapse(line) for line in actual if line.strip()]

    def walk(i, j, bound):
        if i == len(shown):
            return bound if j == len(printed) else None
        if shown[i] == ELLIPSIS:
            for k in range(j, len(printed) + 1):
                found = walk(i + 1, k, bound)
                if found is not None:
                    return found
            return None
        if j == len(printed):
            return None
        matched = _line_pattern(shown[i], bound).fullmatch(printed[j])
        if matched is None:
            return None
        return walk(i + 1, j + 1, {**bound, **matched.groupdict()})

    return walk(0, 0, dict(bound))


def make_run_command(port):
    """The argv of the Makefile's ``run`` recipe, with this interpreter's bin directory and ``port``."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    variables = dict(re.findall(r"^(\w+) \?= (.*)$", makefile, re.M))
    recipe = re.search(r"^run:.*\n\t(.+)$", makefile, re.M).group(1)
    variables.update(BIN=str(pathlib.Path(sys.executable).parent), PORT=str(port))
    return shlex.split(re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], recipe))


def login_requires_token_option():
    """Whether the installed ``hemsync login`` still takes the token only as ``--token``."""
    from client_sync.cli import cli

    return any(p.name == "token" and getattr(p, "required", False) for p in cli.commands["login"].params)


class ReadmeSession:
    """The README's examples run one by one in one working directory, against one server."""

    def __init__(self, workdir):
        self.workdir = pathlib.Path(workdir)
        (self.workdir / "home").mkdir()
        bin_dir = pathlib.Path(sys.executable).parent
        missing = [name for name in ("hemsync", "hemsync-server") if not (bin_dir / name).exists()]
        assert not missing, f"{missing} not installed beside {sys.executable}: run `make venv` first"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HEMSYNC_")}
        self.env.update(HOME=str(self.workdir / "home"), PATH=f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}",
                        PYTHONUNBUFFERED="1")
        self.bound = {}
        self.address = ADDRESS
        self.server = None

    def run(self, example):
        """Run one example; fail with the command, what the README shows and what it printed."""
        if example.command == "make run":
            returncode, printed = 0, self.start_server()
        elif EXPORT.match(example.command):
            returncode, printed = self.export(example.command), []
        else:
            returncode, printed = self.shell(self.login_command(example.command) or example.command,
                                             merge_stderr=example.expects_failure)
        expected = [line.replace(ADDRESS, self.address) for line in example.expected]
        context = (f"README line {example.line}: $ {example.command}\n--- the README shows:\n"
                   + "\n".join(expected) + "\n--- it printed:\n" + "\n".join(printed))
        if example.expects_failure:
            assert returncode != 0, f"expected to fail, exited 0\n{context}"
        else:
            assert returncode == 0, f"exited {returncode}\n{context}"
        bound = match_output(expected, printed, self.bound)
        assert bound is not None, f"the output differs\n{context}"
        self.bound = bound
        self.env.update(bound)

    def substitute(self, command):
        """The command with the server's address and every bound placeholder filled in."""
        def value(found):
            name = found.group(1)
            assert name in self.bound, f"{name} is used before any command printed it: {command}"
            return self.bound[name]

        return PLACEHOLDER.sub(value, command.replace(ADDRESS, self.address))

    def shell(self, command, merge_stderr=False):
        """Run a command line with bash; return its exit status and printed lines."""
        done = subprocess.run(["bash", "-c", self.substitute(command)], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        printed = done.stdout + (done.stderr if merge_stderr else "")
        if done.returncode and not merge_stderr:
            printed += done.stderr
        return done.returncode, printed.splitlines()

    def export(self, command):
        """``export NAME=VALUE``: evaluate VALUE as bash would and keep it for the next commands."""
        name = EXPORT.match(command).group("name")
        done = subprocess.run(["bash", "-c", f'{self.substitute(command)} && printf "%s" "${name}"'],
                              cwd=self.workdir, env=self.env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        self.env[name] = done.stdout
        return done.returncode

    def login_command(self, command):
        """The login as the installed CLI takes it: the README's stdin form, or the older ``--token``."""
        found = LOGIN.match(command)
        if found is None:
            return None
        variable = found.group("variable")
        assert variable in self.bound, f"{variable} is used before `make run` printed it"
        if login_requires_token_option():
            return f"{found.group('login')} --token {shlex.quote(self.bound[variable])}"
        return command

    def start_server(self):
        """Start the server as ``make run`` does; return what it printed up to its serving line."""
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        log = open(self.workdir / "server-stderr.log", "wb")
        self.server = subprocess.Popen(make_run_command(port), cwd=self.workdir, env=self.env,
                                       stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.server.stdout], daemon=True).start()
        printed, deadline = [], time.monotonic() + SERVER_TIMEOUT
        while not printed or not printed[-1].startswith("hemsync-server: serving"):
            try:
                printed.append(lines.get(timeout=max(0.1, deadline - time.monotonic())).rstrip("\n"))
            except queue.Empty:
                raise AssertionError(f"the server did not start within {SERVER_TIMEOUT} s; it printed:\n"
                                     + "\n".join(printed)) from None
        while True:
            try:
                if requests.get(f"http://{self.address}/healthz", timeout=1).status_code == 200:
                    return printed
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"/healthz did not answer within {SERVER_TIMEOUT} s"
            time.sleep(0.05)

    def stop(self):
        """Stop the server this session started."""
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)


def test_example_output_binds_placeholders_and_elides_with_an_ellipsis():
    shown = ["visit VISIT_ID (not yet on the server)", "…", "  signed_by:   DOCTOR_ID", "sent … change(s)"]
    printed = ["visit 606e67a4-29e0-4c4e-81ad-09af52ce9920 (not yet on the server)", "  kind: home_visit",
               "  plan: x", "  signed_by: 1906b8c0-f745-5713-aae5-f798e4a0155e", "", "sent 7 change(s)"]
    bound = match_output(shown, printed, {"DOCTOR_ID": "1906b8c0-f745-5713-aae5-f798e4a0155e"})
    assert bound == {"DOCTOR_ID": "1906b8c0-f745-5713-aae5-f798e4a0155e",
                     "VISIT_ID": "606e67a4-29e0-4c4e-81ad-09af52ce9920"}


def test_example_output_that_differs_in_substance_does_not_match():
    shown = ["  signed_by: DOCTOR_ID", "…"]
    other_doctor = {"DOCTOR_ID": "1906b8c0-f745-5713-aae5-f798e4a0155e"}
    assert match_output(shown, ["  signed_by: 0bcc62e8-1863-549b-bc47-bc2b93d7da54"], other_doctor) is None
    assert match_output(["status: completed"], ["status: on_site"], {}) is None
    assert match_output(["3 patient record(s)"], ["3 patient record(s)", "an extra line"], {}) is None


@pytest.mark.parametrize("requires_option", [False, True])
def test_the_login_runs_as_printed_unless_the_cli_still_requires_the_token_option(
        tmp_path, monkeypatch, requires_option):
    monkeypatch.setattr(sys.modules[__name__], "login_requires_token_option", lambda: requires_option)
    session = ReadmeSession(tmp_path)
    session.bound["NURSE_TOKEN"] = "OE0IyA39kZyALkP1_q0BiaNxJTFo6KB_eFdh1FfTLSA"
    printed = 'echo "$NURSE_TOKEN" | hemsync login --server http://127.0.0.1:5000'
    expected = ("hemsync login --server http://127.0.0.1:5000 --token OE0IyA39kZyALkP1_q0BiaNxJTFo6KB_eFdh1FfTLSA"
                if requires_option else printed)
    assert session.login_command(printed) == expected
    assert session.login_command("hemsync sync") is None


@pytest.mark.e2e
def test_the_readme_examples_run_as_printed_against_the_demo_region(tmp_path):
    examples = readme_examples(README.read_text(encoding="utf-8"))
    assert examples and examples[0].command == "make run", "the README's examples start with `make run`"
    logins = {LOGIN.match(e.command).group("variable") for e in examples if LOGIN.match(e.command)}
    assert logins == {"NURSE_TOKEN", "DISPATCHER_TOKEN", "DOCTOR_TOKEN"}
    session = ReadmeSession(tmp_path)
    try:
        for example in examples:
            session.run(example)
    finally:
        session.stop()
