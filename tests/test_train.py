"""The engine end to end: sweeps, devices, resume, divergence, stop conditions, errors."""
import json
import os
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

import tiny
from analysis import trajectory
from dynamics import checkpoints, runs, train
from dynamics.config_utils import ConfigError
from dynamics import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cfg, path, **kw):
  return trajectory.load(experiment.run(cfg, str(path), log=lambda *_: None, **kw))


def test_vmapped_sweep_equals_runs_one_by_one(tmp_path):
  cfg = tiny.config(float64=True)
  cfg.sweep.seed = (0, 3)
  sweep = _run(cfg, tmp_path / "sweep")
  assert sweep.n_members == 4
  for i, member in enumerate(sweep.members):
    single = tiny.config(float64=True, lrs=None)
    single.seed = member["seed"]
    single.opt.learning_rate = member["opt.learning_rate"]
    one = _run(single, tmp_path / f"one{i}")
    for name in ("train_loss", "test_acc", "grad_norm"):
      np.testing.assert_allclose(sweep.metrics[name][i], one.metrics[name][0], rtol=1e-11,
                                 atol=1e-14, err_msg=f"member {i} {name}")
    p_sweep, p_one = sweep.params(40), one.params(40)
    for k in p_one:
      np.testing.assert_allclose(p_sweep[k][i], p_one[k][0], rtol=1e-11, atol=1e-14)
  # the two learning rates really differ (the comparison above is not vacuous)
  assert not np.allclose(sweep.metrics["train_loss"][0], sweep.metrics["train_loss"][1])


_DEVICE_SCRIPT = r"""
import json, sys
sys.path.insert(0, "tests")
import tiny
from dynamics import experiment
from analysis import trajectory
import jax
cfg = tiny.config(lrs=(0.05, 0.1, 0.2), members=sys.argv[2])
path = experiment.run(cfg, sys.argv[1], log=lambda *_: None)
t = trajectory.load(path)
print(json.dumps({"devices": len(jax.devices()),
                  "loss": t.metrics["train_loss"].tolist(),
                  "w": t.params(40)["W1"].tolist()}))
"""


def _in_subprocess(devices, workdir, layout):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT, str(workdir), layout], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("layout", ["vmap", "map"])
def test_eight_simulated_devices_equal_one(tmp_path, layout):
  one = _in_subprocess(1, tmp_path / "d1", layout)
  eight = _in_subprocess(8, tmp_path / "d8", layout)
  assert (one["devices"], eight["devices"]) == (1, 8)
  if layout == "map":     # each device runs its members' own programs: the same numbers
    assert (eight["loss"], eight["w"]) == (one["loss"], one["w"])
  np.testing.assert_allclose(eight["loss"], one["loss"], rtol=1e-6)
  np.testing.assert_allclose(eight["w"], one["w"], rtol=1e-6, atol=1e-7)


def _wide(lrs, members):
  """The tiny config with two 64-wide layers."""
  cfg = tiny.config(lrs=lrs, members=members)
  cfg.model.widths = (64, 64)
  cfg.opt.learning_rate = 0.2
  return cfg


def test_map_layout_runs_each_member_as_its_single_run(tmp_path):
  sweep = _run(_wide((0.05, 0.2), "map"), tmp_path / "sweep")
  single = _run(_wide(None, "map"), tmp_path / "single")
  np.testing.assert_array_equal(sweep.metrics["train_loss"][1], single.metrics["train_loss"][0])
  for a, b in zip(jax.tree.leaves(sweep.params(40)), jax.tree.leaves(single.params(40))):
    np.testing.assert_array_equal(a[1], b[0])


def test_map_and_vmap_layouts_agree_to_rounding(tmp_path):
  by_map = _run(_wide((0.05, 0.2), "map"), tmp_path / "map")
  by_vmap = _run(_wide((0.05, 0.2), "vmap"), tmp_path / "vmap")
  for k in ("train_loss", "test_loss", "grad_norm"):
    np.testing.assert_allclose(by_map.metrics[k], by_vmap.metrics[k], rtol=1e-5, err_msg=k)


def test_auto_layout_is_map_on_the_cpu_and_vmap_elsewhere():
  auto = train.validate(dict(members="auto"))
  assert (train.layout(auto, "cpu"), train.layout(auto, "gpu")) == ("map", "vmap")
  assert train.layout(train.validate(dict(members="vmap")), "cpu") == "vmap"
  with pytest.raises(ConfigError, match="train.members"):
    train.validate(dict(members="pmap"))


class _Crash(Exception):
  pass


@pytest.mark.parametrize("where,opt", [("save_latest", "gd"), ("append_metrics", "gd"),
                                       ("append_metrics", "adam_moments_float64")])
def test_killed_run_resumes_bit_for_bit(tmp_path, monkeypatch, where, opt):
  cfg = tiny.config(steps=60, chunk_steps=10, checkpoint_every_secs=0.0)
  cfg.sweep.seed = (0, 1)
  if opt != "gd":   # float32 params with a float64 optimizer state: both dtypes come back
    cfg.opt = type(cfg.opt)(dict(name="adam", learning_rate=0.01, moments_float64=True))
  ref = _run(cfg, tmp_path / "ref")
  # crash on the 4th call of `where`, i.e. with half-finished bookkeeping for that chunk
  owner = checkpoints.Checkpoints if where == "save_latest" else runs.RunDir
  original = getattr(owner, where)
  calls = {"n": 0}

  def crashing(self, *a, **k):
    calls["n"] += 1
    if calls["n"] == 4:
      if where == "append_metrics":  # a torn line: the process died while writing
        with open(self.file(runs.METRICS), "a") as f:
          f.write('{"step": 999, "train_lo')
      raise _Crash()
    return original(self, *a, **k)

  monkeypatch.setattr(owner, where, crashing)
  with pytest.raises(_Crash):
    _run(cfg, tmp_path / "killed")
  monkeypatch.setattr(owner, where, original)
  # resumed from its checkpoint alone: the initialization does not run again
  monkeypatch.setattr(train.Runner, "init_state", lambda self: pytest.fail("init_state called"))
  resumed = _run(cfg, tmp_path / "killed")
  with open(tmp_path / "ref" / runs.METRICS) as a, open(tmp_path / "killed" / runs.METRICS) as b:
    assert a.read() == b.read()
  for k, v in ref.params(60).items():
    np.testing.assert_array_equal(resumed.params(60)[k], v)
  for a, b in zip(ref.opt_state_leaves(60), resumed.opt_state_leaves(60)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
  if opt != "gd":
    assert resumed.params(60)["W1"].dtype == np.float32
    assert np.dtype(np.float64) in {x.dtype for x in resumed.opt_state_leaves(60)}


def test_sigkill_at_any_moment_then_resume_is_identical(tmp_path):
  cfg_args = ["--config=tests/tiny_launch.py", "--config.train.steps=3000",
              "--config.train.checkpoint_every_secs=0"]
  ref = subprocess.run([sys.executable, "-m", "experiments.main", *cfg_args,
                        f"--workdir={tmp_path / 'ref'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
  assert ref.returncode == 0, ref.stderr[-2000:]
  work = tmp_path / "killed"
  proc = subprocess.Popen([sys.executable, "-m", "experiments.main", *cfg_args,
                           f"--workdir={work}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  metrics = work / runs.METRICS
  import time
  deadline = time.time() + 200
  while time.time() < deadline:  # kill once a few chunks are on disk, mid-flight
    if metrics.exists() and metrics.read_text().count("\n") > 30:
      break
    time.sleep(0.01)
  proc.kill()
  proc.wait()
  assert metrics.read_text().count("\n") < 601, "the run finished before it was killed"
  again = subprocess.run([sys.executable, "-m", "experiments.main", *cfg_args,
                          f"--workdir={work}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
  assert again.returncode == 0, again.stderr[-2000:]
  assert "resuming" in again.stdout
  assert (tmp_path / "ref" / runs.METRICS).read_text() == metrics.read_text()


def test_diverging_member_is_recorded_and_others_finish(tmp_path):
  cfg = tiny.config(lrs=(0.05, 1e4))
  t = _run(cfg, tmp_path / "div")
  assert list(t.diverged) == [False, True]
  assert t.stop_step[1] >= 0
  loss = t.metrics["train_loss"]
  assert np.all(np.isfinite(loss[0]))
  assert t.steps[-1] == 40
  first_nan = np.flatnonzero(~np.isfinite(loss[1]))[0]
  assert np.all(~np.isfinite(loss[1, first_nan:]))
  assert t.steps[first_nan] > t.stop_step[1]
  # the frozen params are the last finite ones
  assert all(np.all(np.isfinite(v[1])) for v in t.params(40).values())


def test_goals_stop_members_and_the_run(tmp_path):
  cfg = tiny.config(steps=400, chunk_steps=50, lrs=(0.02, 0.4), loss_goal=0.2)
  t = _run(cfg, tmp_path / "goal")
  loss = t.metrics["train_loss"]
  for i in range(2):
    s = t.stop_step[i]
    assert 0 < s < 400
    j = int(np.flatnonzero(t.steps == s)[0])
    assert loss[i, j] <= 0.2 and np.all(loss[i, :j] > 0.2)
    assert np.all(np.isnan(loss[i, j + 1:]))
  assert t.stop_step[1] < t.stop_step[0]           # the larger step size gets there first
  assert t.steps[-1] == max(t.stop_step)           # the run ends when the last member stops


def test_test_accuracy_goal_stops_a_member_at_its_first_log_point_past_it(tmp_path):
  ref = _run(tiny.config(steps=200, chunk_steps=50, lrs=(0.05, 0.4)), tmp_path / "ref")
  goal = 0.9
  t = _run(tiny.config(steps=200, chunk_steps=50, lrs=(0.05, 0.4), test_acc_goal=goal),
           tmp_path / "goal")
  acc = ref.metrics["test_acc"]
  for i in range(2):
    hits = np.flatnonzero(acc[i] >= goal)
    assert hits.size and ref.steps[hits[0]] < 200      # the goal is reached within the run
    s = int(ref.steps[hits[0]])
    assert t.stop_step[i] == s
    j = int(np.flatnonzero(t.steps == s)[0])
    # the same trajectory up to the stop, then frozen (NaN metrics)
    np.testing.assert_array_equal(t.metrics["test_acc"][i, :j + 1], acc[i, :j + 1])
    assert np.all(np.isnan(t.metrics["test_acc"][i, j + 1:]))
  assert t.steps[-1] == max(t.stop_step)


def test_test_accuracy_goal_needs_a_test_split(tmp_path):
  cfg = tiny.config(test_acc_goal=0.9)
  cfg.data.n_test = 0
  with pytest.raises(ConfigError, match=r"train.test_acc_goal=0.9 is not allowed: the data has "
                                        "no test split"):
    experiment.run(cfg, str(tmp_path / "bad"), log=lambda *_: None)
  assert not (tmp_path / "bad").exists()


def test_float32_run_stays_float32_and_compiles_once(tmp_path, monkeypatch):
  traces = {"n": 0}
  original = train.Runner._chunk_fn

  def counting(self, *a):
    traces["n"] += 1
    return original(self, *a)

  monkeypatch.setattr(train.Runner, "_chunk_fn", counting)
  cfg = tiny.config(steps=60, chunk_steps=20)
  cfg.train.keep = "5,15,35"        # chunks of 1, 2, 4, ... log points: still one program
  t = _run(cfg, tmp_path / "f32")
  assert traces["n"] == 1
  assert t.kept_steps == [0, 5, 15, 35, 60]
  assert all(v.dtype == np.float32 for v in t.params(60).values())


def test_resume_restores_into_a_traced_template_without_initializing(tmp_path, monkeypatch):
  # the template has to_host(init_state())'s structure, shapes and dtypes exactly (float32
  # params, float64 moments, probes' state)
  cfg = tiny.config(steps=20)
  cfg.opt = type(cfg.opt)(dict(name="adam", learning_rate=0.01, moments_float64=True))
  cfg.sweep.opt = type(cfg.sweep)(dict(learning_rate=(0.01, 0.02, 0.03)))
  _, _, _, _, _, _, run = experiment.Experiment.from_config(cfg)
  want, got = run.to_host(run.init_state()), run.host_template()
  assert jax.tree.structure(got) == jax.tree.structure(want)
  dtypes = set()
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert (g.shape, g.dtype) == (w.shape, w.dtype)
    dtypes.add(g.dtype)
  assert {np.dtype(np.float32), np.dtype(np.float64)} <= dtypes
  # a finished run launched again (a figure redrawn) never runs the initialization
  done = _run(tiny.config(), tmp_path / "done")
  monkeypatch.setattr(train.Runner, "init_state", lambda self: pytest.fail("init_state called"))
  _assert_same_run(_run(tiny.config(), tmp_path / "done"), done, 40)


@pytest.mark.parametrize("path, value, fragment", [
    ("model.activation", "swish", "model.activation='swish'"),
    ("opt.name", "lion", "opt.name='lion'"),
    ("train.steps", 41, "multiple of train.log_every"),
    ("train.precision", "tf32", "train.precision='tf32' is not allowed; allowed values: "
                                "'highest', 'high', 'default'"),
    ("train.batch_size", -1, "train.batch_size=-1"),
    ("train.batch_size", True, "train.batch_size=True"),
    ("train.keep", "log:-3", "train.keep='log:-3' is not allowed"),
    ("train.acc_goal", 2.0, "train.acc_goal=2.0"),
    ("train.test_acc_goal", -0.5, "train.test_acc_goal=-0.5"),
    ("data.name", "imagenet", "data.name"),
    ("loss.name", "hinge", "loss.name"),
    ("probes.sharpnes", {}, "probes='sharpnes' is not allowed"),
])
def test_config_errors_name_the_field_and_allowed_values(tmp_path, path, value, fragment):
  cfg = tiny.config()
  section, field = path.split(".")
  if field == "name":
    cfg[section] = type(cfg)(dict(name=value))
  else:
    cfg[section][field] = value
  with pytest.raises(ConfigError) as e:
    experiment.run(cfg, str(tmp_path / "bad"), log=lambda *_: None)
  assert fragment in str(e.value)
  assert not (tmp_path / "bad").exists()          # refused before any work


def test_seed_must_be_a_plain_integer():
  for bad in (True, -1, 1.5):     # as a config file could set it (a flag is parsed as int)
    cfg = type(tiny.config())(dict(tiny.config().to_dict(), seed=bad))
    with pytest.raises(ConfigError, match=f"seed={bad!r} is not allowed"):
      experiment.resolve(cfg)


def test_unknown_fields_and_sections_are_refused(tmp_path):
  cfg = tiny.config()
  cfg.train.stepz = 3
  with pytest.raises(ConfigError, match="train: unknown field"):
    experiment.resolve(cfg)
  cfg = tiny.config()
  cfg.optimizer = {}
  with pytest.raises(ConfigError, match="unknown section"):
    experiment.resolve(cfg)


def test_different_config_on_existing_workdir_is_refused(tmp_path):
  _run(tiny.config(steps=10, chunk_steps=10), tmp_path / "w")
  cfg = tiny.config(steps=10, chunk_steps=10)
  cfg.opt.learning_rate = 0.3
  with pytest.raises(runs.ConfigMismatch) as e:
    _run(cfg, tmp_path / "w")
  msg = str(e.value)
  assert "opt.learning_rate: 0.1 -> 0.3" in msg and "--workdir" in msg


def _assert_same_run(a, b, step):
  """Same metrics, same params at `step` and in the final snapshot (whose label is the end of
  the last chunk, so it depends on train.chunk_steps)."""
  assert list(a.steps) == list(b.steps) and list(a.stop_step) == list(b.stop_step)
  for k in b.metrics:
    np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
  for sa, sb in ((step, step), (a.kept_steps[-1], b.kept_steps[-1])):
    for k, v in b.params(sb).items():
      np.testing.assert_array_equal(a.params(sa)[k], v, err_msg=f"{k} at {sa}")


@pytest.mark.parametrize("old_steps, stops", [(20, [45, 5]), (45, [45, 5])])
def test_a_finished_run_extended_to_more_steps_equals_one_launched_with_them(
    tmp_path, old_steps, stops):
  # test_acc_goal 0.9: the lr 0.4 member reaches it at step 5, the lr 0.05 member at 45. Run
  # to old_steps, then on to 100 (in other chunks): a member that stopped only at the old end
  # goes on; one that met the goal there (old_steps 45) stays stopped, as in a 100-step run.
  cfg = lambda steps, chunk: tiny.config(steps=steps, chunk_steps=chunk, lrs=(0.05, 0.4),
                                         test_acc_goal=0.9)
  fresh = _run(cfg(100, 20), tmp_path / "fresh")
  assert list(fresh.stop_step) == stops
  first = _run(cfg(old_steps, 20), tmp_path / "w")
  assert list(first.stop_step) == [old_steps, 5]
  extended = _run(cfg(100, 10), tmp_path / "w")
  _assert_same_run(extended, fresh, 20)
  assert extended.steps[-1] == 45
  stored = json.loads((tmp_path / "w" / "config.json").read_text())
  assert stored["config"]["train"]["steps"] == 100
  assert stored["changes"][0]["fields"] == ["train.chunk_steps: 20 -> 10",
                                            f"train.steps: {old_steps} -> 100"]


def _crash_on_call(monkeypatch, cls, name, n, when=lambda *a, **k: True):
  """Makes cls.name raise _Crash on its n-th call for which when(*args) holds."""
  original, calls = getattr(cls, name), {"n": 0}

  def crashing(*a, **k):
    if when(*a, **k):
      calls["n"] += 1
      if calls["n"] == n:
        raise _Crash()
    return original(*a, **k)

  monkeypatch.setattr(cls, name, crashing)
  return lambda: monkeypatch.setattr(cls, name, original)


def test_an_extension_killed_before_its_first_checkpoint_still_extends(tmp_path, monkeypatch):
  # train.steps 20 -> 100, killed in the first new chunk (config.json already says 100): the
  # same command again must still restart the member that stopped at 20
  cfg = lambda steps: tiny.config(steps=steps, chunk_steps=20, lrs=(0.05, 0.4),
                                  test_acc_goal=0.9)
  fresh = _run(cfg(100), tmp_path / "fresh")
  _run(cfg(20), tmp_path / "w")
  restore = _crash_on_call(monkeypatch, train.Runner, "run_chunk", 1)
  with pytest.raises(_Crash):
    _run(cfg(100), tmp_path / "w")
  restore()
  assert json.loads((tmp_path / "w" / "config.json").read_text())["config"]["train"]["steps"] \
      == 100
  _assert_same_run(_run(cfg(100), tmp_path / "w"), fresh, 20)


def test_a_kill_before_the_final_summary_is_repaired_on_resume(tmp_path, monkeypatch):
  cfg = tiny.config(steps=40, chunk_steps=20)
  ref = _run(cfg, tmp_path / "ref")
  restore = _crash_on_call(monkeypatch, experiment, "_write_summary", 1,
                           when=lambda rd, r, host, step, s: bool(np.all(host.done)))
  with pytest.raises(_Crash):
    _run(cfg, tmp_path / "w")
  restore()
  assert json.loads((tmp_path / "w" / runs.SUMMARY).read_text())["step"] == 20   # stale
  resumed = _run(cfg, tmp_path / "w")
  read = lambda d: {k: v for k, v in json.loads((tmp_path / d / runs.SUMMARY).read_text()
                                                ).items() if k != "train_seconds"}
  assert read("w") == read("ref")
  _assert_same_run(resumed, ref, 40)


def test_the_seconds_spent_training_add_up_over_launches(tmp_path, monkeypatch):
  clock = {"t": 1000.0}
  monkeypatch.setattr(experiment.time, "time", lambda: clock["t"])

  def slow_chunk(original):
    def chunk(self, *a, **k):
      clock["t"] += 2.5                     # each chunk takes 2.5 s on this clock
      return original(self, *a, **k)
    return chunk

  monkeypatch.setattr(train.Runner, "run_chunk", slow_chunk(train.Runner.run_chunk))
  w = tmp_path / "w"
  cfg = lambda steps: tiny.config(steps=steps, chunk_steps=10, members="vmap")  # one program
  _run(cfg(40), w)                                          # 4 chunks
  assert runs.train_seconds(str(w)) == 10.0
  _run(cfg(60), w)                                          # resumed: 2 more
  assert runs.train_seconds(str(w)) == 15.0
  # a run directory written before the seconds were recorded: they stay unknown
  stored = json.loads((w / runs.SUMMARY).read_text())
  del stored["train_seconds"]
  (w / runs.SUMMARY).write_text(json.dumps(stored))
  _run(cfg(70), w)
  assert runs.train_seconds(str(w)) is None
  (w / runs.SUMMARY).write_text("{torn")
  assert runs.train_seconds(str(w)) is None


def test_train_steps_lowered_to_the_checkpointed_step_ends_there(tmp_path, monkeypatch):
  # a 100-step launch killed with its checkpoint at 30, then run with train.steps = 30: the
  # same as a run launched with 30 (no log point past 30, both members stopped at 30)
  cfg = lambda steps: tiny.config(steps=steps, chunk_steps=10, checkpoint_every_secs=0.0)
  fresh = _run(cfg(30), tmp_path / "fresh")
  restore = _crash_on_call(monkeypatch, train.Runner, "run_chunk", 4)
  with pytest.raises(_Crash):
    _run(cfg(100), tmp_path / "w")
  restore()
  lowered = _run(cfg(30), tmp_path / "w")
  assert list(lowered.stop_step) == [30, 30] and lowered.steps[-1] == 30
  _assert_same_run(lowered, fresh, 20)
  assert lowered.kept_steps == fresh.kept_steps


def test_train_steps_below_the_step_a_run_reached_is_refused_and_changes_nothing(tmp_path):
  _run(tiny.config(steps=20, chunk_steps=10), tmp_path / "w")
  before = (tmp_path / "w" / "config.json").read_text()
  with pytest.raises(ConfigError, match="train.steps=10 is not allowed .* the run has reached "
                                        "step 20; give train.steps >= 20"):
    _run(tiny.config(steps=10, chunk_steps=10), tmp_path / "w")
  assert (tmp_path / "w" / "config.json").read_text() == before


def test_run_created_before_a_field_existed_resumes_while_the_field_keeps_its_default(tmp_path):
  cfg = tiny.config(steps=10, chunk_steps=10)
  before = _run(cfg, tmp_path / "w").metrics["train_loss"]
  path = tmp_path / "w" / "config.json"
  stored = json.loads(path.read_text())
  del stored["config"]["train"]["test_acc_goal"], stored["config"]["opt"]["perpgrad"]
  path.write_text(json.dumps(stored))                 # as written by older code
  np.testing.assert_array_equal(_run(cfg, tmp_path / "w").metrics["train_loss"], before)
  cfg.train.test_acc_goal = 0.9                       # a new field away from its default
  with pytest.raises(runs.ConfigMismatch, match="train.test_acc_goal: '<absent>' -> 0.9"):
    _run(cfg, tmp_path / "w")


@pytest.mark.parametrize("layout", ["map", "vmap"])
def test_a_grid_run_in_groups_equals_one_program(tmp_path, layout):
  def cfg(group):
    c = tiny.config(lrs=(0.05, 0.1, 0.2), members=layout, members_per_program=group,
                    checkpoint_every_secs=0.0)
    c.sweep.seed = (0, 1)           # 6 members: groups of 4 and 2 (padded to 4)
    return c
  one = _run(cfg(6), tmp_path / "one")
  # map: each member's own program, so the same numbers; vmap: a batched program whose rounding
  # depends on how many members it batches (measured: 2.5e-7 relative)
  same = np.testing.assert_array_equal if layout == "map" else (
      lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7))
  # 0 (automatic) on the one CPU device: groups of one member in the map layout
  for group in (4, 0) if layout == "map" else (4,):
    name = f"grouped{group}"
    grouped = _run(cfg(group), tmp_path / name)
    if layout == "map":
      read = lambda d: open(tmp_path / d / runs.METRICS).read()
      assert read("one") == read(name)
    assert one.kept_steps == grouped.kept_steps and one.steps.tolist() == grouped.steps.tolist()
    for k in one.metrics:
      same(grouped.metrics[k], one.metrics[k])
    for step in one.kept_steps:
      for x, y in zip(jax.tree.leaves(one.params(step)), jax.tree.leaves(grouped.params(step))):
        same(y, x)
    for x, y in zip(one.opt_state_leaves(40), grouped.opt_state_leaves(40)):
      same(y, x)


@pytest.mark.parametrize("layout,devices,expected", [
    ("map", 1, 1), ("map", 4, 4), ("map", 8, 6), ("vmap", 1, 6), ("vmap", 4, 6)])
def test_the_automatic_group_is_one_member_per_device_in_the_map_layout(layout, devices,
                                                                         expected):
  mesh = types.SimpleNamespace(devices=np.asarray([jax.devices()[0]] * devices))
  runner = types.SimpleNamespace(layout=layout, mesh=mesh, state_bytes_per_member=lambda: 1000)
  assert train.group_size(runner, 6) == expected
  big = types.SimpleNamespace(layout="vmap", mesh=mesh, state_bytes_per_member=lambda: 2**62)
  assert train.group_size(big, 6) == 1               # states too large to share a program


@pytest.mark.parametrize("layout", ["map", "vmap"])
def test_the_experiment_runs_a_map_sweep_on_one_cpu_in_groups_of_one(layout):
  exp = experiment.Experiment.from_config(tiny.config(lrs=(0.05, 0.1, 0.2), members=layout))
  if layout == "map":
    assert isinstance(exp.runner, train.GroupedRunner) and exp.runner._first.n_pad == 1
  else:
    assert isinstance(exp.runner, train.Runner) and exp.runner.n == 3


def test_a_grouped_run_killed_mid_chunk_resumes_to_the_same_numbers(tmp_path, monkeypatch):
  cfg = tiny.config(steps=60, chunk_steps=10, lrs=(0.05, 0.1, 0.2), members_per_program=2,
                    checkpoint_every_secs=0.0)
  ref = _run(cfg, tmp_path / "ref")
  original, calls = train.Runner.run_chunk, {"n": 0}

  def crashing(self, *a, **k):       # the 3rd group-chunk: one group of chunk 2 done, not both
    calls["n"] += 1
    if calls["n"] == 3:
      raise _Crash()
    return original(self, *a, **k)

  monkeypatch.setattr(train.Runner, "run_chunk", crashing)
  with pytest.raises(_Crash):
    _run(cfg, tmp_path / "killed")
  monkeypatch.setattr(train.Runner, "run_chunk", original)
  resumed = _run(cfg, tmp_path / "killed")
  np.testing.assert_array_equal(resumed.metrics["train_loss"], ref.metrics["train_loss"])
  for x, y in zip(jax.tree.leaves(resumed.params(60)), jax.tree.leaves(ref.params(60))):
    np.testing.assert_array_equal(x, y)


def test_a_group_larger_than_the_grid_is_refused(tmp_path):
  with pytest.raises(ConfigError, match=r"train.members_per_program=5 .* use 1 to 2"):
    experiment.Experiment.from_config(tiny.config(members_per_program=5))
