"""Every config's quick run, shortened, computes what it computed before the experiment
redesign: the metrics in tests/fixtures/metrics/ were written by tests/fixtures/cases.py with
the code before it. Under the jax version that wrote them the metrics and the digest of the
final parameters must be equal bit for bit; under another jax version (other XLA kernels) the
metrics must agree to rtol 1e-5 and the digest is not compared."""
import json
import os

import jax
import numpy as np
import pytest

from fixtures import cases

FIXTURES = os.path.join(cases.HERE, "metrics")


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_quick_run_equals_the_fixture_written_before_the_redesign(name, tmp_path):
  with open(os.path.join(FIXTURES, f"{name}.json")) as f:
    want = json.load(f)
  assert want["overrides"] == cases.CASES[name][2]
  got = json.loads(json.dumps(cases.run_case(name, str(tmp_path / name))))
  assert got["steps"] == want["steps"] and sorted(got["metrics"]) == sorted(want["metrics"])
  same_jax = want["jax_version"] == jax.__version__
  for k, v in want["metrics"].items():
    a = np.asarray(got["metrics"][k], dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    if same_jax:
      np.testing.assert_array_equal(a, b, err_msg=f"{name}: {k}")
    else:
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=f"{name}: {k}")
  if same_jax:
    assert got["params_digest"] == want["params_digest"]
