"""Strict numerics for every test: float64 available, no silent rank promotion."""
import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")

# Runs in different tests often compile the same program (same shapes, other values):
# a persistent compilation cache for the session turns those recompilations into lookups.
import tempfile  # noqa: E402

jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jax_cache_"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def reproduce_root(tmp_path_factory):
  """One root for the quick reproductions of the whole session: the figure tests train the runs
  and the notebooks (given it as REPRODUCE_ROOT) reuse them instead of training them again."""
  return tmp_path_factory.mktemp("reproduce")
