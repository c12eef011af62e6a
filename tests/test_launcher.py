"""The absl launcher end to end on a tiny config, and its refusals."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(*args):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_launcher_runs_writes_run_directory_and_figures(tmp_path):
  work = tmp_path / "run"
  out = _launch("--config=tests/tiny_launch.py", f"--workdir={work}",
                "--config.opt.learning_rate=0.07", "--config.sweep.opt.learning_rate=(0.03,0.3)")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "step 40/40" in out.stdout and "steps/s" in out.stdout and "ETA" in out.stdout
  meta = json.loads((work / "config.json").read_text())
  assert meta["config"]["opt"]["learning_rate"] == 0.07
  assert meta["sweep"]["members"] == [{"opt.learning_rate": 0.03}, {"opt.learning_rate": 0.3}]
  assert "--config.opt.learning_rate=0.07" in meta["command"]
  for key in ("git_commit", "jax_version", "devices"):
    assert meta[key]
  lines = (work / "metrics.jsonl").read_text().splitlines()
  assert json.loads(lines[0])["step"] == 0 and json.loads(lines[-1])["step"] == 40
  assert (work / "figures" / "training_curves.png").stat().st_size > 10_000
  assert (work / "figures" / "probes.png").exists()
  # same command again: resumes a finished run, does nothing new, same metrics
  again = _launch("--config=tests/tiny_launch.py", f"--workdir={work}",
                  "--config.opt.learning_rate=0.07",
                  "--config.sweep.opt.learning_rate=(0.03,0.3)")
  assert again.returncode == 0 and "resuming" in again.stdout
  assert (work / "metrics.jsonl").read_text().splitlines() == lines
  # config.json keeps what the run was created with and records the resume beside it
  meta2 = json.loads((work / "config.json").read_text())
  assert {k: v for k, v in meta2.items() if k != "resumes"} == meta
  [resume] = meta2["resumes"]
  assert resume["step"] == 40 and resume["git_commit"] == meta["git_commit"]
  assert "--config.opt.learning_rate=0.07" in resume["command"] and resume["devices"]


def test_launcher_refuses_bad_values_before_any_work(tmp_path):
  work = tmp_path / "bad"
  out = _launch("--config=tests/tiny_launch.py", f"--workdir={work}",
                "--config.model.activation=swish")
  assert out.returncode == 2
  assert "model.activation='swish'" in out.stderr and "'tanh'" in out.stderr
  assert "Traceback" not in out.stderr
  assert not work.exists()


def test_launcher_refuses_unknown_flag_fields(tmp_path):
  out = _launch("--config=tests/tiny_launch.py", f"--workdir={tmp_path / 'x'}",
                "--config.train.stepz=3")
  assert out.returncode != 0 and "stepz" in out.stderr
  assert not (tmp_path / "x").exists()


def test_different_config_on_existing_workdir_says_how_to_proceed(tmp_path):
  work = tmp_path / "w"
  assert _launch("--config=tests/tiny_launch.py", f"--workdir={work}").returncode == 0
  out = _launch("--config=tests/tiny_launch.py", f"--workdir={work}",
                "--config.train.log_every=10")
  assert out.returncode == 2
  assert "train.log_every: 5 -> 10" in out.stderr and "new --workdir" in out.stderr


def test_quickstart_quick_variant_runs(tmp_path):
  out = _launch("--config=experiments/configs/quickstart.py:quick",
                f"--workdir={tmp_path / 'q'}")
  assert out.returncode == 0, out.stderr[-3000:]
  assert (tmp_path / "q" / "figures" / "training_curves.png").exists()
