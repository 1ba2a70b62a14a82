"""Sweeps against a cluster that does not answer end soon, with one line; Ctrl-C while connecting ends at
once; and the sweep command's stdout carries its results only, whatever Ray and its workers print."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import PRESETS

from workbench import cli

ray = pytest.importorskip("ray")

import workbench.services.sweep as sweep  # noqa: E402
from workbench.core.errors import ConfigError  # noqa: E402
from workbench.services.sweep import plan_sweep, run_sweep  # noqa: E402

TINY = ["run.eval_tasks=10", "run.eval_steps=2", "run.eval_interval=10", "run.checkpoint_interval=10"]
PRESET = PRESETS / "maml-sinusoid.toml"
SHORT = 3.0  # the connection timeout these tests run with (seconds)
TIMEOUT_ENV = "WORKBENCH_RAY_CONNECT_TIMEOUT"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A local TCP server that is not Ray: ``silent`` accepts and never answers, ``other`` answers in another
    protocol, ``grpc`` is a gRPC server (HTTP/2, as Ray's is) that knows none of Ray's services."""

    def __init__(self, kind: str):
        self.kind, self.accepted = kind, threading.Event()
        self._conns, self._stop = [], threading.Event()
        if kind == "grpc":
            import grpc
            from concurrent.futures import ThreadPoolExecutor

            accepted = self.accepted

            class Seen(grpc.ServerInterceptor):
                def intercept_service(self, continuation, details):
                    accepted.set()  # a call came (from Ray): it answers none
                    return continuation(details)

            self._grpc = grpc.server(ThreadPoolExecutor(2), interceptors=[Seen()])
            self.port = self._grpc.add_insecure_port("0.0.0.0:0")
            self._grpc.start()
            return
        self._sock = socket.socket()
        self._sock.bind(("0.0.0.0", 0))  # Ray reads 127.0.0.1 as this machine's address
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted.set()
            if self.kind == "other":
                conn.sendall(b"-ERR unknown command\r\n")
            self._conns.append(conn)

    def close(self):
        if self.kind == "grpc":
            self._grpc.stop(None)
            return
        self._stop.set()
        self._thread.join()
        for c in self._conns:
            c.close()
        self._sock.close()


@pytest.fixture
def server(request):
    made = []

    def make(kind):
        made.append(Server(kind))
        return made[-1]

    yield make
    for s in made:
        s.close()
    attempt = getattr(sweep, "_abandoned", None)
    if attempt is not None:  # an attempt given up on ends once its server has gone
        attempt.join(10)


def cli_sweep(*args, env=None, **popen):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "workbench", "sweep", "maml-sinusoid", "--iterations", "3",
                             "--out", str(popen.pop("out")), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **popen)


def finish(proc, timeout):
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err, time.monotonic() - t0


def assert_one_line_naming(err: str, address: str):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"workbench: error: --address {address}: cannot connect to a Ray cluster"), err


# -- an address that does not answer ------------------------------------------------------------------
def test_a_refused_address_is_one_line_naming_it_within_seconds(tmp_path):
    port = closed_port()
    cases = {f"127.0.0.1:{port}": {}, f"ray://127.0.0.1:{port}": {},
             "auto": {"RAY_ADDRESS": f"127.0.0.1:{port}"}}  # "auto" reads RAY_ADDRESS first
    procs = {a: (time.monotonic(), cli_sweep("--address", a, env=env, out=tmp_path)) for a, env in cases.items()}
    try:
        for address, (t0, proc) in procs.items():  # (all three at once)
            code, out, err, _ = finish(proc, 60)
            took = time.monotonic() - t0
            assert code == 2 and out == "", (address, err)
            assert_one_line_naming(err, address)
            assert "connection refused" in err and took < 25, (address, took)
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind, why", [("silent", f"gave no answer within {SHORT:g} s"),
                                       ("other", "is not a Ray port"),
                                       ("grpc", f"did not answer within {SHORT:g} s")])
def test_a_port_that_is_not_ray_fails_within_the_timeout(tmp_path, server, kind, why):
    srv = server(kind)
    address = f"127.0.0.1:{srv.port}"
    t0 = time.monotonic()
    code, out, err, _ = finish(cli_sweep("--address", address, out=tmp_path,
                                         env={TIMEOUT_ENV: str(SHORT)}), 60)
    took = time.monotonic() - t0
    assert code == 2 and out == "", err
    assert_one_line_naming(err, address)  # none of Ray's own connection warnings either
    assert why in err
    assert took < SHORT + 15, took  # the timeout, the interpreter's start, and a prompt exit


def test_the_timeout_is_a_module_constant_or_the_environment(monkeypatch, server):
    monkeypatch.delenv(sweep.CONNECT_TIMEOUT_ENV, raising=False)
    assert sweep.connect_timeout() == sweep.CONNECT_TIMEOUT == 30
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", 1.5)
    assert sweep.connect_timeout() == 1.5
    monkeypatch.setenv(sweep.CONNECT_TIMEOUT_ENV, "0.5")
    assert sweep.connect_timeout() == 0.5
    for bad in ("soon", "0", "-1", "nan"):
        monkeypatch.setenv(sweep.CONNECT_TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=f"{sweep.CONNECT_TIMEOUT_ENV}='{bad}': expected a number"):
            sweep.connect_timeout()

    monkeypatch.setenv(sweep.CONNECT_TIMEOUT_ENV, "1")  # in this process: a silent port, given up on after 1 s
    srv = server("silent")
    trials = plan_sweep(PRESET, 1, [], TINY + ["run.iterations=2"])
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=f"--address 127.0.0.1:{srv.port}: cannot connect"):
        run_sweep(trials, Path("unused"), address=f"127.0.0.1:{srv.port}")
    assert time.monotonic() - t0 < 3 and not ray.is_initialized()


@pytest.mark.parametrize("address", ["nowhere", "host:port", "ray://"])
def test_a_malformed_address_is_refused_naming_it(capsys, tmp_path, address):
    assert cli.main(["sweep", str(PRESET), "--address", address, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"workbench: error: --address {address}: expected host:port, auto or ray://host:port"


# -- stopping while connecting --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["silent", "grpc"])  # before Ray is asked, and inside ray.init
def test_ctrl_c_while_connecting_ends_the_sweep_at_once(tmp_path, server, kind):
    srv = server(kind)
    proc = cli_sweep("--address", f"127.0.0.1:{srv.port}", out=tmp_path)  # the default timeout: 30 s
    try:
        assert srv.accepted.wait(30)
        time.sleep(1.0)  # well inside the attempt (for "grpc": inside ray.init, which retries)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        code, out, err, _ = finish(proc, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130 and out == "", err
    assert err.strip() == "workbench: interrupted"
    assert time.monotonic() - t0 < 5
    assert not any(tmp_path.iterdir())


def test_stop_while_connecting_cancels_every_trial(server):
    srv = server("silent")
    trials = plan_sweep(PRESET, 2, [], TINY + ["run.iterations=2"])
    stop, events = threading.Event(), []
    threading.Timer(0.5, stop.set).start()
    t0 = time.monotonic()
    result = run_sweep(trials, Path("unused"), address=f"127.0.0.1:{srv.port}", stop_event=stop,
                       callback=events.append)
    assert time.monotonic() - t0 < 3 and not ray.is_initialized()
    assert result.interrupted and [t.status for t in result.trials] == ["cancelled"] * 2
    assert all(t.run_dir is None for t in result.trials) and not Path("unused").exists()
    assert sorted(e.status for e in events) == ["cancelled"] * 2


# -- the dialog ------------------------------------------------------------------------------------------
def test_the_sweep_dialog_shows_why_it_cannot_connect_and_can_stop_connecting(qtbot, tmp_path, server):
    pytest.importorskip("PySide6")
    from PySide6.QtWidgets import QLabel, QLineEdit

    from conftest import tiny_config
    from workbench.gui.sweep_dialog import SweepDialog

    d = SweepDialog(tiny_config("maml", iterations=5), tmp_path / "runs", num_cpus=1)
    qtbot.addWidget(d)
    port = closed_port()
    d.findChild(QLineEdit, "sweepAddressEdit").setText(f"127.0.0.1:{port}")
    assert d.start() is True
    qtbot.waitUntil(lambda: not d.is_running(), timeout=10_000)
    message = d.findChild(QLabel, "sweepMessage")
    assert message.text().startswith(f"Ray address 127.0.0.1:{port}: cannot connect to a Ray cluster: "
                                     "connection refused") and message.property("error")
    assert {d.row_status(r) for r in range(3)} == {"cancelled"}

    srv = server("silent")  # Stop while it connects (the default timeout): ends at once, nothing ran
    d.findChild(QLineEdit, "sweepAddressEdit").setText(f"127.0.0.1:{srv.port}")
    assert d.start() is True
    assert srv.accepted.wait(10)
    t0 = time.monotonic()
    d.stop()
    qtbot.waitUntil(lambda: not d.is_running(), timeout=5_000)
    assert time.monotonic() - t0 < 3
    assert d.result is not None and d.result.interrupted
    assert {d.row_status(r) for r in range(3)} == {"cancelled"}
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- stdout carries the results only ------------------------------------------------------------------
def _descendants_running(root: int, title: str) -> list[int]:
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parents[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass

    def under(pid):
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    found = []
    for pid in parents:
        if pid != root and under(pid):
            try:
                if title in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    found.append(pid)
            except OSError:
                pass
    return found


NOISY_WORKERS = '''import sys
if sys.argv and sys.argv[0].endswith("default_worker.py"):  # in Ray's worker processes only
    import threading, time, warnings

    def _noise():
        while True:
            print("NOISE on a worker's stdout", flush=True)
            warnings.warn("NOISE: a worker's warning")
            time.sleep(0.3)

    threading.Thread(target=_noise, daemon=True).start()
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the trial's worker process in /proc")
def test_stdout_holds_only_the_table_and_the_id_whatever_ray_and_its_workers_print(tmp_path):
    """Ray's workers print (a sitecustomize on their path) and one dies (the trial's Ray Tune actor, killed:
    Ray's "(raylet) A worker died ..." warning, which Ray prints on the driver's stdout), then the trial is
    retried and stopped."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NOISY_WORKERS)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    sets = [a for s in TINY + ["run.threads=1", "run.eval_interval=1000000", "run.checkpoint_interval=1"]
            for a in ("--set", s)]
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", "maml-sinusoid", "--iterations", "10000000",
                             "--out", str(runs), *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path))
    err = []
    try:
        for line in proc.stderr:  # wait until the trial runs
            err.append(line)
            if "started" in line:
                break
        deadline = time.monotonic() + 30
        first = []
        while not first and time.monotonic() < deadline:
            first = _descendants_running(proc.pid, "ImplicitFunc")
            time.sleep(0.1)
        assert first, "".join(err)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        retry = []
        while not retry and time.monotonic() < deadline:  # Ray retries the trial in a new worker
            retry = [p for p in _descendants_running(proc.pid, "ImplicitFunc") if p not in first]
            time.sleep(0.1)
        assert retry, "".join(err)
        while not list(runs.glob("*-0-seed0/checkpoint.safetensors")) and time.monotonic() < deadline + 30:
            time.sleep(0.1)  # the retry has made its run (its first checkpoint: run.checkpoint_interval=1)
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = "".join(err) + rest
    lines = out.splitlines()
    assert proc.returncode == 130, err
    sweep_id = lines[-1]
    assert len(lines) == 4, out  # the summary, the table's head and its one row, the sweep id
    assert lines[0].startswith(f"sweep {sweep_id}: 1 trial(s), 1 stopped")
    assert lines[1].split()[:2] == ["seeds", "finished"] and lines[2].split()[:2] == ["0", "0/1"]
    assert [p.name for p in runs.iterdir() if not p.name.startswith(".")] == [f"{sweep_id}-0-seed0"]
    # what Ray and the workers printed went to stderr, not lost
    assert "NOISE on a worker's stdout" in err and "A worker died" in err


def test_the_sweep_output_is_restored_however_the_sweep_ends(capfd):
    for hold in (False, True):
        with pytest.raises(RuntimeError):
            with cli._SweepOutput(hold_stderr=hold):
                os.write(1, b"fd1 ")
                os.write(2, b"fd2 ")
                print("py-stdout", flush=True)  # (pytest's sys.stderr here is no descriptor: never held)
                raise RuntimeError
        os.write(1, b"after\n")
        print("printed after", flush=True)
        captured = capfd.readouterr()
        assert captured.out == "after\nprinted after\n"
        # both descriptors held back while connecting, and dropped when the sweep fails
        assert captured.err == ("py-stdout\n" if hold else "fd1 fd2 py-stdout\n")
        with cli._SweepOutput(hold_stderr=hold) as output:
            os.write(1, b"ray says hello\n")
            output.release()
            os.write(2, b"progress\n")
        captured = capfd.readouterr()
        assert captured.out == "" and captured.err == "ray says hello\nprogress\n"
