"""Decoder-only transformer over token sequences; by default exactly Nanda et al.'s grokking model.

Nanda, Chan, Lieberum, Smith, Steinhardt 2023, "Progress measures for grokking via mechanistic
interpretability" (Sec. 3 and App. A; their public training code): one layer, d_model 128,
4 heads of d_head 32, d_mlp 512, ReLU, learned positional embeddings, no LayerNorm, untied
embed / unembed, no attention biases, MLP biases. Names follow that code and shapes the
TransformerLens layout (their code stores W_E and W_pos transposed, [D, V] and [D, P]); B batch,
P = n_ctx positions, D = d_model, H = n_heads, E = d_head, M = d_mlp, V = d_vocab:

    W_E [V, D], W_pos [P, D], W_U [D, V] (absent when tied: W_U = W_E^T)
    blocks[str(l)]: W_Q, W_K, W_V [H, E, D]; W_O [D, H * E] (column h * E + e is head h's
                    output dim e, i.e. z of shape [B, P, H, E] flattened head-major);
                    W_in [M, D], b_in [M], W_out [D, M], b_out [D]
    with layernorm=True also blocks[str(l)]['ln1'], ['ln2'] and top-level 'ln_final', each a
    dict {'w' [D], 'b' [D]} (gain, bias; eps 1e-5).

Forward (residual stream x [B, P, D]):

    x = W_E[tokens] + W_pos
    per block: x = x + Attn(LN1(x)),  x = x + W_out act(W_in LN2(x) + b_in) + b_out
               (LN = identity when layernorm=False; pre-LN blocks otherwise)
    Attn: q, k, v = W_Q h, W_K h, W_V h per head; scores = q . k / sqrt(d_head), causal
          (position i attends to j <= i); z = softmax(scores) v; out = W_O z_flat
    features = LN_final(x[:, -1])  (the residual stream at the last position, the '=' token)
    logits   = features @ W_U[:, :out_dim]

Only x[:, -1] reaches the logits, so `apply` computes the last block's attention query, MLP and
residual at the last position alone (keys and values at every position): the logits are the
same up to rounding, and a step of the one-layer grokking model costs 6.4 rather than 13.9
GFLOP (XLA's count, 3,830 training pairs, forward and backward). `run_with_cache` computes
every position, since its cache holds them all.

The logits keep the first out_dim = p vocabulary entries: the tokens out_dim..d_vocab-1 (the '='
token) are inputs only and their logits are dropped, as in Nanda et al.'s loss
(`logits[:, -1, :-1]`), so d_vocab must be at least out_dim + 1.

Initialisation (c = init_scale): every matrix c * N(0, 1) / sqrt(d_model), except W_U
c * N(0, 1) / sqrt(d_vocab); b_in, b_out = 0; LayerNorm gains c * 1 and biases 0. The init_scale
contract (dynamics.models) therefore holds for the LayerNorm gains too: they start at c, not 1.
(Each LayerNorm divides out the scale of its input, so with layernorm=True the initial function
is not the polynomial in c that it is without LayerNorm.)

Key path: ONE standard normal draw z = jax.random.normal(key, (total,), dtype) is cut, in this
order and row-major, into W_E, W_pos, W_U, then for each block l = 0..L-1 W_Q, W_K, W_V, W_O,
W_in, W_out (one draw compiles ~10x faster than a threefry kernel per matrix, which dominates the
compile time of a small run). W_U's slice is drawn but unused when tied, so W_E, W_pos and the
blocks do not depend on `tied`, and adding layers leaves the earlier layers unchanged.

Inputs: x [B, n_ctx] integer tokens (floating arrays holding integers are cast to int32);
n_ctx = in_dim (3 for [a, b, =]). Computation runs in the params' dtype; matmul precision is
left to the caller (jax's default precision, set by the training loop).
"""
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dynamics.fields import Field
from dynamics.config_utils import ConfigError
from dynamics.models import common

NAME = "transformer"
ACTIVATIONS = ("relu", "gelu")
LN_EPS = 1e-5


FIELDS = dict(
    in_dim=Field(None, "context length n_ctx (3 for [a, b, =]), filled from the data",
                 kind="int", lo=1),
    out_dim=Field(None, "number of answer classes (p), filled from the data", kind="int", lo=1),
    d_vocab=Field(None, "vocabulary size; None: out_dim + 1 (the '=' token is p)", kind="int",
                  lo=2),
    d_model=Field(128, "residual stream width", lo=1),
    n_heads=Field(4, "attention heads", lo=1),
    d_head=Field(32, "width of each head", lo=1),
    d_mlp=Field(512, "MLP width", lo=1),
    n_layers=Field(1, "blocks", lo=1),
    activation=common.ACTIVATION("relu", ACTIVATIONS),
    layernorm=Field(False, "pre-LN blocks and a final LN (Nanda et al.: none)"),
    tied=Field(False, "W_U = W_E^T (Nanda et al.: untied)"),
    init_scale=common.INIT_SCALE,
)


def _check(cfg) -> None:
  if cfg.d_vocab is not None and cfg.out_dim is not None and cfg.d_vocab < cfg.out_dim + 1:
    raise ConfigError(f"model.d_vocab={cfg.d_vocab!r} is not allowed with model.out_dim="
                      f"{cfg.out_dim}; it must be an integer >= out_dim + 1 = "
                      f"{cfg.out_dim + 1} (the '=' token) or None")


validate, default_config = common.declare(NAME, FIELDS, _check)


def vocab_size(cfg: Any) -> int:
  """d_vocab, or out_dim + 1 when the config leaves it None."""
  return int(cfg.d_vocab) if cfg.d_vocab is not None else int(cfg.out_dim) + 1


def init(key: jax.Array, cfg: Any, dtype=jnp.float32) -> dict:
  cfg, dtype, (n_ctx, _) = common.prepare(validate, cfg, dtype)
  v, d, h, e, m = vocab_size(cfg), cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
  c = float(cfg.init_scale)
  block_shapes = [("W_Q", (h, e, d)), ("W_K", (h, e, d)), ("W_V", (h, e, d)),
                  ("W_O", (d, h * e)), ("W_in", (m, d)), ("W_out", (d, m))]
  shapes = [(v, d), (n_ctx, d), (d, v)] + [s for _, s in block_shapes] * cfg.n_layers
  z = jax.random.normal(key, (sum(math.prod(s) for s in shapes),), dtype)
  offset = 0

  def normal(shape, fan):   # the next slice of z, times c / sqrt(fan)
    nonlocal offset
    size = math.prod(shape)
    out = z[offset:offset + size].reshape(shape)
    offset += size
    return ((c / math.sqrt(fan)) * out).astype(dtype)

  def ln():
    return {"w": jnp.full((d,), c, dtype), "b": jnp.zeros((d,), dtype)}

  params = {"W_E": normal((v, d), d), "W_pos": normal((n_ctx, d), d)}
  w_u = normal((d, v), v)                 # Nanda et al.: 1/sqrt(d_vocab) for W_U only
  if not cfg.tied:
    params["W_U"] = w_u
  blocks = {}
  for l in range(cfg.n_layers):
    blk = {name: normal(shape, d) for name, shape in block_shapes}
    blk.update(b_in=jnp.zeros((m,), dtype), b_out=jnp.zeros((d,), dtype))
    if cfg.layernorm:
      blk["ln1"], blk["ln2"] = ln(), ln()
    blocks[str(l)] = blk
  params["blocks"] = blocks
  if cfg.layernorm:
    params["ln_final"] = ln()
  return params


def _layernorm(p: dict, x: jax.Array) -> jax.Array:
  """LayerNorm over the last axis (biased variance, eps 1e-5, as torch.nn.LayerNorm)."""
  mu = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
  y = (x - mu) * jax.lax.rsqrt(var + LN_EPS)
  lead = (1,) * (x.ndim - 1)
  return y * p["w"].reshape(lead + (-1,)) + p["b"].reshape(lead + (-1,))


def _tokens(x: Any, n_ctx: int) -> jax.Array:
  x = jnp.asarray(x)
  if x.ndim != 2 or x.shape[1] != n_ctx:
    raise ValueError(f"the transformer needs tokens of shape [N, n_ctx={n_ctx}]; got {x.shape}")
  return x if x.dtype == jnp.int32 else x.astype(jnp.int32)


def _attention(blk: dict, h_BPD: jax.Array, n_query: int) -> tuple[jax.Array, jax.Array]:
  """Causal multi-head attention without biases for the queries at the last n_query positions
  (keys and values at every position); returns (output [B, Q, D], pattern [B, H, Q, P])."""
  n_ctx, d_head = h_BPD.shape[1], blk["W_Q"].shape[1]
  q = jnp.einsum("hed,bpd->bphe", blk["W_Q"], h_BPD[:, n_ctx - n_query:])
  k = jnp.einsum("hed,bpd->bphe", blk["W_K"], h_BPD)
  v = jnp.einsum("hed,bpd->bphe", blk["W_V"], h_BPD)
  # Nanda et al.: scores scaled by 1/sqrt(d_head), query i attends to keys j <= i.
  scores = jnp.einsum("bqhe,bkhe->bhqk", q, k) * (1.0 / math.sqrt(d_head))
  q_pos = np.arange(n_ctx - n_query, n_ctx).reshape(-1, 1)
  causal = (np.arange(n_ctx).reshape(1, -1) <= q_pos).reshape(1, 1, n_query, n_ctx)
  scores = jnp.where(causal, scores, -jnp.inf)   # the diagonal keeps every row finite
  pattern = jax.nn.softmax(scores, axis=-1)
  z = jnp.einsum("bhqk,bkhe->bqhe", pattern, v)
  z_flat = z.reshape(z.shape[0], n_query, -1)    # head-major: column h * d_head + e
  return jnp.einsum("df,bqf->bqd", blk["W_O"], z_flat), pattern


def _forward(params: dict, x: Any, cfg: Any, with_cache: bool) -> tuple[jax.Array, dict]:
  """Logits [B, out_dim] and the cache (see run_with_cache; only 'features' without with_cache).

  Only the last position's residual stream reaches the logits, so without the cache the last
  block computes its attention query, its MLP and its residual at that position alone (fewer
  than half the FLOPs of the one-layer model; same logits up to rounding).
  """
  n_ctx = params["W_pos"].shape[0]
  tokens = _tokens(x, n_ctx)
  act = common.activation(cfg.activation)
  ln = _layernorm if cfg.layernorm else (lambda p, t: t)
  resid = params["W_E"][tokens] + params["W_pos"].reshape(1, n_ctx, -1)
  n_layers = len(params["blocks"])
  patterns, pres, posts, resids = [], [], [], []
  for l in range(n_layers):
    blk = params["blocks"][str(l)]
    n_query = 1 if (l == n_layers - 1 and not with_cache) else n_ctx
    attn_out, pattern = _attention(blk, ln(blk.get("ln1"), resid), n_query)
    resid = resid[:, n_ctx - n_query:] + attn_out
    pre = (jnp.einsum("md,bpd->bpm", blk["W_in"], ln(blk.get("ln2"), resid))
           + blk["b_in"].reshape(1, 1, -1))
    post = act(pre)
    resid = resid + jnp.einsum("dm,bpm->bpd", blk["W_out"], post) + blk["b_out"].reshape(1, 1, -1)
    patterns.append(pattern)
    pres.append(pre[:, -1])
    posts.append(post[:, -1])
    resids.append(resid)
  resid_final = resid[:, -1]
  features = ln(params.get("ln_final"), resid_final)
  w_u = params["W_E"].T if "W_U" not in params else params["W_U"]
  out_dim = int(cfg.out_dim) if cfg.out_dim is not None else w_u.shape[1] - 1
  logits = features @ w_u[:, :out_dim]          # the '=' class (and any beyond p) dropped
  if not with_cache:
    return logits, {"features": features}
  cache = {"attn_pattern": jnp.stack(patterns, axis=1), "mlp_pre": jnp.stack(pres, axis=1),
           "mlp_post": jnp.stack(posts, axis=1), "resid_post": jnp.stack(resids, axis=1),
           "resid_final": resid_final, "features": features}
  return logits, cache


def readout(params: dict, cfg: Any):
  """The unembedding as a classifier of the features: (W_U[:, :out_dim]^T [out_dim, D], no
  bias)."""
  w_u = params["W_E"].T if "W_U" not in params else params["W_U"]
  return w_u[:, :cfg.out_dim].T, None


def apply(params: dict, x: Any, cfg: Any, return_features: bool = False):
  """Logits [N, out_dim] at the last position; with return_features also features [N, d_model].

  The features are the vector the unembedding reads: the final residual stream at the last
  position (after the final LayerNorm when layernorm=True).
  """
  logits, cache = _forward(params, x, cfg, with_cache=False)
  return (logits, cache["features"]) if return_features else logits


def run_with_cache(params: dict, x: Any, cfg: Any) -> tuple[jax.Array, dict]:
  """The logits of apply and the intermediate activations the grokking analysis reads.

  Returns:
    (logits [N, out_dim], cache) with cache
      'attn_pattern' [N, L, H, P, P]  softmax attention, [.., query, key], zero above the diagonal
      'mlp_pre'      [N, L, d_mlp]    MLP pre-activations W_in h + b_in at the last position
      'mlp_post'     [N, L, d_mlp]    MLP neuron activations act(mlp_pre) at the last position
      'resid_post'   [N, L, P, D]     residual stream after each block, every position
      'resid_final'  [N, D]           final residual stream at the last position (before ln_final)
      'features'     [N, D]           what apply(..., return_features=True) returns
  """
  return _forward(params, x, cfg, with_cache=True)
