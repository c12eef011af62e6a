"""Run directories survive what happens to real runs (fault injection on the tiny config).

Two launches at once, a torn or damaged log, damaged checkpoints, Ctrl-C once and twice (in
training and during a save), a file-size limit hit mid-run, SIGKILL at random moments: after
each, the same command finishes the run with every log line and every parameter identical to
an uninterrupted run's.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tiny
from analysis import trajectory
from dynamics import experiment, runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--config=tests/tiny_launch.py", "--config.train.steps=400",
        "--config.train.chunk_steps=10", "--config.train.checkpoint_every_secs=0"]
# A child that runs the launcher after `PATCH` (python code) has changed the library, e.g. to
# slow chunks down or to send itself signals at a chosen moment.
CHILD = """
import os, signal, sys, time
sys.argv = ["main"] + sys.argv[1:]
from absl import app
from experiments import main
from dynamics import checkpoints, train
{patch}
app.run(main.main, flags_parser=main.parse_flags)
"""
SLOW = """
_chunk = train.Runner.run_chunk
def _slow(self, *a, **k):
  time.sleep(0.05)
  return _chunk(self, *a, **k)
train.Runner.run_chunk = _slow
"""


def _env(tmp_path, cache):
  # one compilation cache for every child of a test: relaunches start in a second or two
  if not cache:
    return dict(os.environ)
  return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def _start(tmp_path, work, patch="", cache=True, **kw):
  return subprocess.Popen([sys.executable, "-c", CHILD.format(patch=patch), *ARGS,
                           f"--workdir={work}"], cwd=ROOT, env=_env(tmp_path, cache),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _launch(tmp_path, work, patch="", cache=True, **kw):
  proc = _start(tmp_path, work, patch, cache, **kw)
  out, err = proc.communicate(timeout=300)
  return proc.returncode, out, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted run: its log text and its final parameters."""
  tmp = tmp_path_factory.mktemp("ref")
  rc, _, err = _launch(tmp, tmp / "ref")
  assert rc == 0, err[-2000:]
  return _state(tmp / "ref")


def _state(work):
  t = trajectory.load(str(work))
  return (work / runs.METRICS).read_text(), t.params(t.kept_steps[-1])


def _assert_identical(work, reference):
  log, params = _state(work)
  steps = [json.loads(l)["step"] for l in log.splitlines()]
  assert steps == list(range(0, 401, 5))             # every log step once, in order
  assert log == reference[0]
  for k, v in reference[1].items():
    np.testing.assert_array_equal(params[k], v)


def _wait_for_lines(path, n, proc, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if path.exists() and path.read_text().count("\n") >= n:
      return
    time.sleep(0.01)
  raise AssertionError(f"{path} did not reach {n} lines")


def test_a_second_launch_is_refused_and_the_first_finishes_intact(tmp_path, reference):
  work = tmp_path / "run"
  first = _start(tmp_path, work, SLOW)
  _wait_for_lines(work / runs.METRICS, 5, first)
  rc, out, err = _launch(tmp_path, work)
  assert rc == 2 and err.count("\n") == 1, err
  assert f"error: {work} is in use by another launch (pid {first.pid} on " in err
  assert first.wait(timeout=300) == 0
  _assert_identical(work, reference)


def test_a_lock_left_by_a_killed_launch_is_taken_over(tmp_path, reference):
  work = tmp_path / "run"
  proc = _start(tmp_path, work, SLOW)
  _wait_for_lines(work / runs.METRICS, 5, proc)
  proc.kill()
  proc.wait()
  assert json.loads((work / runs.LOCK).read_text())["pid"] == proc.pid
  rc, out, err = _launch(tmp_path, work)
  assert rc == 0, err[-2000:]
  assert f"taking over the lock of {work} from a launch that is gone (pid {proc.pid} " in out
  _assert_identical(work, reference)
  assert (work / runs.LOCK).read_text() == ""          # released


def _finished(tmp_path, steps=60, **train):
  """A tiny run in-process (float64 for a quick reference), and its config."""
  cfg = tiny.config(steps=steps, chunk_steps=10, checkpoint_every_secs=0.0, float64=True,
                    **train)
  path = tmp_path / f"run{steps}"
  experiment.run(cfg, str(path), log=lambda *_: None)
  return cfg, path


def _again(cfg, path, steps=None):
  lines = []
  if steps is not None:
    cfg.train.steps = steps
  experiment.run(cfg, str(path), log=lines.append)
  return lines


def test_a_torn_or_damaged_log_is_reported_and_recomputed(tmp_path):
  cfg, ref = _finished(tmp_path)
  for damage in ("torn", "garbage", "duplicate"):
    cfg, work = _finished(tmp_path / damage)
    log = (work / runs.METRICS).read_text().splitlines(keepends=True)
    if damage == "torn":           # the last line cut mid-way, as a full disk leaves it
      text = "".join(log[:-1]) + log[-1][:25]
    elif damage == "garbage":      # bytes overwritten in the middle
      text = "".join(log[:6]) + "\x00\x17garbage\n" + "".join(log[7:])
    else:                          # a line written twice (two writers)
      text = "".join(log[:9]) + log[8] + "".join(log[9:])
    (work / runs.METRICS).write_text(text)
    out = _again(cfg, work)
    assert any(f"{work / runs.METRICS}: " in l and "recomputed" in l for l in out), out
    assert (work / runs.METRICS).read_text() == (ref / runs.METRICS).read_text(), damage
  with pytest.warns(UserWarning, match="is torn"):   # a reader says so, and reads the rest
    (work / runs.METRICS).write_text("".join(log) + '{"step": 65, "tr')
    assert trajectory.load(str(work)).steps[-1] == 60


def _damage(directory):
  """Overwrites bytes in the largest file below `directory`."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]
  target = max(files, key=os.path.getsize)
  with open(target, "r+b") as f:
    f.seek(os.path.getsize(target) // 2)
    f.write(b"\xde\xad\xbe\xef" * 4)


def test_a_damaged_checkpoint_is_skipped_for_an_intact_one(tmp_path):
  cfg, ref = _finished(tmp_path, steps=80)
  t_ref = trajectory.load(str(ref))
  cfg, work = _finished(tmp_path / "one", steps=60)
  _damage(work / "checkpoints" / "latest" / "60")
  out = _again(cfg, work, steps=80)                   # resumes from step 50, the older one
  assert any("checkpoint at step 60" in l and "damaged" in l for l in out), out
  assert f"resuming {work} at step 50" in out
  t = trajectory.load(str(work))
  assert (work / runs.METRICS).read_text() == (ref / runs.METRICS).read_text()
  for k, v in t_ref.params(80).items():
    np.testing.assert_array_equal(t.params(80)[k], v)
  # both latest checkpoints damaged: one line, and the run is computed again from step 0
  cfg, work = _finished(tmp_path / "both", steps=60)
  for step in (50, 60):
    _damage(work / "checkpoints" / "latest" / str(step))
  out = _again(cfg, work, steps=80)
  assert any("starting again from step 0" in l for l in out), out
  assert (work / runs.METRICS).read_text() == (ref / runs.METRICS).read_text()
  # a damaged kept checkpoint: trajectory.load names it and loads the rest
  _damage(work / "checkpoints" / "kept" / "20")
  with pytest.warns(UserWarning, match="kept at step 20 is damaged"):
    t = trajectory.load(str(work))
  assert 20 not in t.kept_steps and t.damaged_steps == [20] and 40 in t.kept_steps
  with pytest.raises(KeyError, match="step 20 is damaged"):
    t.params(20)


def _no_traceback(err):
  assert "Traceback" not in err and "RuntimeError" not in err, err[-3000:]


@pytest.mark.parametrize("times", [1, 2])
def test_ctrl_c_in_training(tmp_path, reference, times):
  work = tmp_path / "run"
  proc = _start(tmp_path, work, SLOW)
  _wait_for_lines(work / runs.METRICS, 10, proc)
  for _ in range(times):
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
  out, err = proc.communicate(timeout=120)
  _no_traceback(err)
  if times == 1:     # stops at the end of its chunk, checkpointed
    assert proc.returncode == 130, err
    assert "Ctrl-C: stopping at the end of this chunk" in err
    assert "; run the same command to resume" in err and "interrupted at step " in err
  else:              # the second one ends it at once
    assert proc.returncode in (130, -signal.SIGINT), err
  rc, out, err = _launch(tmp_path, work)
  assert rc == 0 and "resuming" in out, err[-2000:]
  _assert_identical(work, reference)


# a Ctrl-C (or two) arriving while the 6th latest checkpoint is being written
DURING_SAVE = """
_save = checkpoints.Checkpoints._save
_calls = [0]
def _signalling(self, kind, step, item):
  _calls[0] += 1
  if _calls[0] == 6 and kind == "latest":
    for _ in range({times}):
      os.kill(os.getpid(), signal.SIGINT)
  return _save(self, kind, step, item)
checkpoints.Checkpoints._save = _signalling
"""


@pytest.mark.parametrize("times", [1, 2])
def test_ctrl_c_during_a_save(tmp_path, reference, times):
  work = tmp_path / "run"
  rc, out, err = _launch(tmp_path, work, DURING_SAVE.format(times=times))
  _no_traceback(err)
  assert rc == (130 if times == 1 else -signal.SIGINT), err[-2000:]
  rc, out, err = _launch(tmp_path, work)
  assert rc == 0, err[-2000:]
  _assert_identical(work, reference)


def test_a_file_size_limit_stops_the_run_in_one_line_and_it_resumes(tmp_path, reference):
  work = tmp_path / "run"
  # set in the child once it has imported everything (no compilation cache: its entries would
  # hit the limit first)
  limit = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, -1))"
  rc, out, err = _launch(tmp_path, work, limit, cache=False)
  _no_traceback(err)
  assert rc == 1 and err.startswith("error: could not write ") and err.count("\n") == 1, err
  assert "File too large" in err and "resumes intact with the same command" in err
  rc, out, err = _launch(tmp_path, work)          # the limit lifted
  assert rc == 0, err[-2000:]
  _assert_identical(work, reference)


def test_sigkill_at_random_moments_then_resume_is_identical(tmp_path, reference):
  """20 launches of the same command, each killed at a random moment (while starting, in a
  chunk, while writing the log or a checkpoint), then one that finishes."""
  work, rng, kills = tmp_path / "run", random.Random(0), 0
  for _ in range(20):
    proc = _start(tmp_path, work, SLOW)
    time.sleep(rng.uniform(0.5, 4.0))
    if proc.poll() is None:
      proc.kill()
      kills += 1
    proc.communicate()
  assert kills >= 15          # most launches were still running when killed
  rc, out, err = _launch(tmp_path, work)
  assert rc == 0, err[-2000:]
  _assert_identical(work, reference)


@pytest.mark.parametrize("workdir, fragment", [
    ("", "--workdir is empty"),
    ("FILE", "is a file, not a directory"),
    ("FILE/run", "cannot be created: "),
])
def test_workdir_problems_are_one_line_before_any_work(tmp_path, workdir, fragment):
  (tmp_path / "FILE").write_text("x")
  rc, out, err = _launch(tmp_path, workdir.replace("FILE", str(tmp_path / "FILE")))
  assert rc == 2 and err.count("\n") == 1 and fragment in err, err
  assert "step " not in out                      # nothing was built or trained


def test_an_unwritable_workdir_is_refused(tmp_path, monkeypatch):
  # (the tests may run as root, who may write anywhere: the permission is what is checked)
  monkeypatch.setattr(os, "access", lambda path, mode: False)
  with pytest.raises(runs.RunDirError, match="is not writable"):
    experiment.run(tiny.config(), str(tmp_path / "run"))


def test_trajectory_load_says_what_is_missing(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    trajectory.load(str(tmp_path / "nope"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="is empty: not a run directory"):
    trajectory.load(str(tmp_path / "empty"))
  cfg, work = _finished(tmp_path, steps=20)
  (work / runs.METRICS).unlink()                  # killed just after config.json
  with pytest.raises(ValueError, match="has logged nothing yet"):
    trajectory.load(str(work))
