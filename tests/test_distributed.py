"""Two processes on one machine (CPU devices, a localhost coordinator, gloo collectives) run a
sweep as one program over both: the same numbers as one process with two devices, and a kill of
both mid-run then a relaunch resumes to the same numbers."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.xdist_group("distributed")
QUICK = ["--config=experiments/configs/quickstart.py:quick", "--config.train.steps=300",
         "--config.train.chunk_steps=20", "--config.train.checkpoint_every_secs=0"]


def _env(devices):
  return dict(os.environ, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(workdir, extra=(), devices=1):
  return subprocess.Popen([sys.executable, "-m", "experiments.main", *QUICK,
                           f"--workdir={workdir}", *extra], cwd=ROOT, env=_env(devices),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _two(workdir, timeout=60):
  port = _port()
  return [_launch(workdir, ["--distributed", f"--coordinator_address=localhost:{port}",
                            "--num_processes=2", f"--process_id={i}",
                            f"--distributed_timeout={timeout}"]) for i in range(2)]


def _finish(procs):
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  return outs


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return f.read()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The same run in one process with two devices."""
  workdir = tmp_path_factory.mktemp("one") / "run"
  _finish([_launch(workdir, devices=2)])
  return _metrics(workdir)


def test_two_processes_compute_what_one_process_with_two_devices_computes(tmp_path, reference):
  outs = _finish(_two(tmp_path / "run"))
  assert _metrics(tmp_path / "run") == reference
  assert "step 300/300" in outs[0] and "step" not in outs[1].replace("steps", "")   # 0 reports
  assert os.path.exists(tmp_path / "run" / "figures" / "training_curves.png")


def test_both_processes_killed_mid_run_resume_to_the_same_numbers(tmp_path, reference):
  workdir = tmp_path / "run"
  procs = _two(workdir)
  log = workdir / "metrics.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) > 8):
    time.sleep(0.2)
  for p in procs:
    p.send_signal(signal.SIGKILL)
    p.wait()
  assert len(log.read_text().splitlines()) < 31, "the run ended before the kill"
  outs = _finish(_two(workdir))
  assert "resuming" in outs[0]
  assert _metrics(workdir) == reference


def test_a_process_id_out_of_range_is_named(tmp_path):
  out = subprocess.run([sys.executable, "-m", "experiments.main", *QUICK,
                        f"--workdir={tmp_path}/run", "--distributed",
                        "--coordinator_address=localhost:1", "--num_processes=2",
                        "--process_id=2"], cwd=ROOT, env=_env(1), capture_output=True, text=True,
                       timeout=120)
  assert out.returncode != 0
  assert "--process_id=2 is out of range: use 0 to 1" in out.stderr


def test_a_coordinator_that_never_answers_is_an_error_not_a_hang(tmp_path):
  t = time.time()
  out = subprocess.run([sys.executable, "-m", "experiments.main", *QUICK,
                        f"--workdir={tmp_path}/run", "--distributed",
                        f"--coordinator_address=localhost:{_port()}", "--num_processes=2",
                        "--process_id=1", "--distributed_timeout=5"], cwd=ROOT, env=_env(1),
                       capture_output=True, text=True, timeout=120)
  assert out.returncode != 0 and time.time() - t < 90
  assert "could not join the coordinator at localhost:" in out.stderr
