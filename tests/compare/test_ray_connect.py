"""How ``samlm compare --backend ray`` reaches Ray: without ``--address`` an instance of its
own, even where a crashed cluster left its address behind; an address where nothing
answers refused at once; and the README's cluster recipe on this machine: a head and a
second node started with ``ray start``, token authentication on, a tiny grid through
``samlm compare --address``, a missing or wrong token refused with a message naming it.
Every Ray process here is the tests' own, on 127.0.0.1 (see ``ray_env``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from samlm.cli import main
from samlm.compare import GridSpec, compare
from samlm.compare import store as store_module
from samlm.compare.backends import RayBackend

from .fake import fake_cell
from .ray_env import clean_env, confined, free_port, short_dir

ray = pytest.importorskip("ray", reason="needs ray (pip install 'samlm[ray]')")

ROOT = Path(__file__).resolve().parents[2]
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
DRIVER = "import sys; from samlm.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def temp_dir():
    """Ray's temp folder for one test (no Ray connected in this process)."""
    if ray.is_initialized():
        ray.shutdown()
    folder = short_dir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_without_an_address_a_crashed_clusters_address_is_not_joined(
    temp_dir, tmp_path, monkeypatch
):
    dead = f"127.0.0.1:{free_port()}"  # what a cluster killed without `ray stop` leaves
    (temp_dir / "ray").mkdir()
    (temp_dir / "ray" / "ray_current_cluster").write_text(dead)
    real, addresses = ray.init, []

    def init(*args, **kwargs):
        addresses.append(kwargs.get("address"))
        assert kwargs.get("address") == "local", "would join the dead cluster (a hang)"
        return real(*args, **kwargs)

    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=["baseline", "sam"], seeds=2)
    workers = {"env_vars": {"PYTHONPATH": str(ROOT)}}  # they import the fake cells
    backend = RayBackend(init_options={"num_cpus": 2, "runtime_env": workers})
    with confined(temp_dir), monkeypatch.context() as m:
        m.setenv("RAY_ADDRESS", dead)  # neither is joined
        m.setattr(ray, "init", init)
        records = compare(spec, tmp_path, backend=backend, cell_fn=fake_cell)
    assert addresses == ["local"]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values())
    assert not ray.is_initialized()  # the instance lived for the grid only


def test_an_address_where_nothing_answers_exits_2_at_once(temp_dir, tmp_path, capsys, data_dir):
    address, out = f"127.0.0.1:{free_port()}", tmp_path / "out"
    argv = ["compare", "--backend", "ray", "--address", address, "--data-dir", str(data_dir)]
    start = time.monotonic()
    with confined(temp_dir):
        code = main([*argv, "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"--address {address}: cannot reach Ray at {address}" in err
    assert "nothing answers there" in err and "Connection refused" in err
    assert time.monotonic() - start < 60  # Ray alone retries such an address for minutes
    assert not out.exists()


def test_a_dead_ray_client_address_and_a_malformed_one_are_named(temp_dir):
    from samlm.compare.ray_connect import diagnose

    port = free_port()
    with confined(temp_dir):
        dead, malformed = diagnose(f"ray://127.0.0.1:{port}"), diagnose("nohost")
    assert dead.startswith(f"cannot reach Ray at 127.0.0.1:{port}: nothing answers there")
    assert "Invalid address format: nohost" in malformed


def _start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """``ray start ARGS --block``: a node that lives as long as this process, its own
    process group."""
    command = [RAY, "start", *args, "--block", "--disable-usage-stats"]
    with log.open("w") as f:
        return subprocess.Popen(
            command, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(nodes: list[subprocess.Popen], root: Path) -> None:
    """Each node's ``ray start`` ended (it stops its node's processes), then anything of
    ours left (its command line names ``root``, our temp folder) killed by id. Not
    ``ray stop``: that stops every Ray on the machine, a user's included."""
    for node in reversed(nodes):
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(timeout=30)
    deadline = time.time() + 30
    while (left := _ours(root)) and time.time() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _ours(root: Path) -> list[int]:
    """Running processes whose command line names ``root``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(root).encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def _wait_for_head(port: int, client: int, head: subprocess.Popen, log: Path) -> None:
    """Until the head's GCS and its Ray Client server answer, each refusing a call without
    a token (token authentication on)."""
    import grpc

    from samlm.compare.ray_connect import CLIENT_METHOD, GCS_METHOD, probe

    deadline = time.time() + 180
    for target, method in ((port, GCS_METHOD), (client, CLIENT_METHOD)):
        while time.time() < deadline:
            assert head.poll() is None, f"the head exited: {log.read_text()[-3000:]}"
            code, _ = probe(f"127.0.0.1:{target}", method, token=None)
            if code != grpc.StatusCode.UNAVAILABLE:
                assert code == grpc.StatusCode.UNAUTHENTICATED  # a token is required
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the head did not come up: {log.read_text()[-3000:]}")


def _grid(tiny_bert_dir: Path, data_dir: Path) -> list[str]:
    """A tiny grid: 2 cells of 4 steps on a tiny random BERT."""
    return [
        *("compare", "--backend", "ray", "--tasks", "glue/sst2", "--sizes", "16"),
        *("--methods", "baseline,sam", "--seeds", "1", "--model", str(tiny_bert_dir)),
        *("--epochs", "1", "--min-steps", "4", "--eval-steps", "4", "--eval-size", "16"),
        *("--validation-size", "16", "--batch-size", "8", "--max-length", "32"),
        *("--data-dir", str(data_dir)),
    ]


@contextlib.contextmanager
def _cluster(root: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The README's recipe on this machine, in ``root``: a token and a head with token
    authentication (no CPU: cells run only on the node that joins), then a second node
    that joins with the head's token; yields the head's address, its Ray Client address
    and the head machine's environment. Both stopped at the end, nothing of theirs left."""
    homes = {n: root / n for n in ("head", "node")}
    for home in homes.values():
        home.mkdir()
    # workers import samlm from this tree; 127.0.0.1 stays loopback on the head (and
    # the driver), which then listens on 127.0.0.1 only
    base = clean_env(root, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", RAY_AUTH_MODE="token")
    head_env = {**base, "HOME": str(homes["head"]), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    port, client, nodes = free_port(), free_port(), []
    try:
        made = subprocess.run(
            [RAY, "get-auth-token", "--generate"], env=head_env, capture_output=True, timeout=120
        )
        assert made.returncode == 0, made.stderr
        head_args = ["--head", "--port", str(port), "--ray-client-server-port", str(client)]
        head_args += ["--num-cpus", "0", "--include-dashboard=false"]
        nodes.append(_start(head_env, root / "head.log", *head_args))
        _wait_for_head(port, client, nodes[0], root / "head.log")
        # the second machine: the head's token in RAY_AUTH_TOKEN (as the Slurm recipe passes
        # it; the driver reads the head's file). It joins by [::ffff:127.0.0.1]: Ray replaces
        # 127.0.0.1 by the machine's address on a joining node
        token = (homes["head"] / ".ray" / "auth_token").read_text()
        assert made.stdout.decode().strip() == token  # what RAY_AUTH_TOKEN=$(...) takes
        node_env = {**base, "HOME": str(homes["node"]), "RAY_AUTH_TOKEN": token}
        node_args = ["--address", f"[::ffff:127.0.0.1]:{port}", "--num-cpus", "2"]
        _node_without_the_mode_is_refused(node_env, node_args)
        nodes.append(_start(node_env, root / "node.log", *node_args))
        yield f"127.0.0.1:{port}", f"ray://127.0.0.1:{client}", head_env
        assert all(node.poll() is None for node in nodes)  # both still up
    finally:
        _stop(nodes, root)
    assert not _ours(root)


def _node_without_the_mode_is_refused(env: dict[str, str], args: list[str]) -> None:
    """A node joining with the token but without RAY_AUTH_MODE=token does not start."""
    env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    command = [RAY, "start", *args, "--disable-usage-stats"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "AuthenticationError" in run.stderr + run.stdout
    assert "RAY_AUTH_MODE is currently 'disabled'" in run.stderr + run.stdout


@pytest.mark.slow
def test_the_readme_cluster_recipe_with_token_authentication(
    temp_dir, tmp_path, monkeypatch, capsys, data_dir, tiny_bert_dir
):
    with _cluster(temp_dir) as (head, client, head_env):
        grid = _grid(tiny_bert_dir, data_dir)
        homes = (Path(head_env["HOME"]), temp_dir / "bare")
        refusals = _refusals(head, client, *homes)
        for address, env, message in refusals:
            out = tmp_path / "refused"
            with confined(temp_dir), monkeypatch.context() as m:
                m.delenv("RAY_AUTH_TOKEN")
                for name, value in env.items():
                    m.setenv(name, str(value))
                assert main([*grid, "--address", address, "--output", str(out)]) == 2
            assert message in capsys.readouterr().err
            assert not out.exists()
        for address in (head, client):  # through the GCS, and through Ray Client
            out = tmp_path / address.replace(":", "_").replace("/", "")
            argv = [*grid, "--address", address, "--output", str(out)]
            run = subprocess.run(
                [sys.executable, "-c", DRIVER, *argv],
                env=head_env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert run.returncode == 0, run.stderr[-5000:] + _client_server_logs(temp_dir)
            records = store_module.read(out)
            assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())


def _client_server_logs(root: Path) -> str:
    """The tails of the head's Ray Client server logs under ``root`` (Ray's temp folder),
    which say why a driver's init through Ray Client failed."""
    logs = sorted(root.glob("ray/session_*/logs/ray_client_server*"))
    return "".join(f"\n--- {log.name}:\n{log.read_text()[-3000:]}" for log in logs)


def _refusals(head: str, client: str, home: Path, bare: Path) -> list[tuple[str, dict, str]]:
    """Drivers Ray refuses, each with the message that names why: the address, the token
    mode unset (at the head, through Ray Client), no token, a wrong token."""
    unset = "RAY_AUTH_MODE is unset here: set RAY_AUTH_MODE=token"
    wrong = {"HOME": home, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    cases = [
        (head, {"HOME": home}, unset),
        (client, {"HOME": home}, unset),
        (head, {"HOME": bare, "RAY_AUTH_MODE": "token"}, "no token was found here"),
        (head, wrong, "the token from the RAY_AUTH_TOKEN variable is not the cluster's"),
    ]
    why = "refused this driver for authentication: the cluster uses token authentication, and"
    target = {head: head, client: client.removeprefix("ray://")}
    return [(a, env, f"--address {a}: Ray at {target[a]} {why} {m}") for a, env, m in cases]
