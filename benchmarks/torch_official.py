"""The official CLASS stage-2 (MLQA-PT) training step in plain PyTorch (no transformers).

The formulation of the official code (reference/class-method.md sections 2 and 4), written
with torch primitives so that it runs on any torch version: every (question, passage) pair is
one [q; p] sequence of Lq + Lp tokens through the whole mT5 encoder, with the "independent"
mask below retriever layer R (query rows see the query, every other row sees the passage); the
retrieval vectors come from block R's normalised self-attention input (masked mean, query_proj
or passage_proj, shared RMSNorm) and the question's vector is the mean of its K per-pair
copies; the FiD decoder cross-attends over all K * (Lq + Lp) encoder outputs; the reader
relevance is the last decoder layer's cross-attention at decoder position 0 (after dropout),
summed over each pair's slots and averaged over heads. The stage-2 loss per question is
CE_tokmean + lambda * KL(sg[relevance] || softmax_k <e_q, e_pk>), averaged over questions.

Attention is HF T5's eager attention (no 1/sqrt(d) scaling, position bias plus the mask added
to the scores, float32 softmax). ``compute_dtype`` is the activation dtype: parameters stay
float32 and every matmul casts its weight to it, as ``MT5Config.dtype`` does in clqa_jax (the
official code trains in float32). tests/official_formulation.py is the same forward in JAX.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import checkpoint as torch_checkpoint


@dataclasses.dataclass(frozen=True)
class OfficialConfig:
  """mT5 dimensions and the retriever layer R."""
  vocab_size: int
  d_model: int
  d_kv: int
  d_ff: int
  num_heads: int
  num_encoder_layers: int
  num_decoder_layers: int
  retriever_layer: int
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.1
  layer_norm_epsilon: float = 1e-6

  @property
  def inner_dim(self) -> int:
    return self.num_heads * self.d_kv


def official_checkpointed_layers(retriever_layer: int, num_layers: int) -> tuple[int, ...]:
  """Encoder blocks the official code runs under gradient checkpointing: 0..R-1 and R+1..R+3
  (blocks 0-11 and 13-15 of mT5-large, class-method.md section 6); the decoder is never
  checkpointed."""
  r = retriever_layer
  return tuple(range(r)) + tuple(range(r + 1, min(r + 4, num_layers)))


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> torch.Tensor:
  """HF ``T5Attention._relative_position_bucket``: relative positions (key - query) -> ids."""
  buckets = torch.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    buckets = buckets + (relative_position > 0).long() * num_buckets
    relative_position = relative_position.abs()
  else:
    relative_position = -torch.clamp(relative_position, max=0)
  max_exact = num_buckets // 2
  is_small = relative_position < max_exact
  large = max_exact + (torch.log(relative_position.float() / max_exact)
                       / math.log(max_distance / max_exact)
                       * (num_buckets - max_exact)).long()
  large = torch.clamp(large, max=num_buckets - 1)
  return buckets + torch.where(is_small, relative_position, large)


class RMSNorm(nn.Module):
  """T5 layer norm: x * rsqrt(mean(x^2) + eps) * scale, statistics in float32."""

  def __init__(self, dim: int, eps: float):
    super().__init__()
    self.scale = nn.Parameter(torch.ones(dim))
    self.eps = eps

  def forward(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
    return (normed * self.scale).to(dtype)


class Attention(nn.Module):
  """T5 attention: q/k/v [H*Dk, D], o [D, H*Dk] (torch Linear layout, no biases)."""

  def __init__(self, c: OfficialConfig):
    super().__init__()
    self.heads, self.d_kv = c.num_heads, c.d_kv
    shape = (c.inner_dim, c.d_model)
    self.q = nn.Parameter(torch.empty(shape))
    self.k = nn.Parameter(torch.empty(shape))
    self.v = nn.Parameter(torch.empty(shape))
    self.o = nn.Parameter(torch.empty(c.d_model, c.inner_dim))

  def _heads(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """[N, L, D] -> [N, H, L, Dk]."""
    y = F.linear(x, weight.to(x.dtype))
    return y.view(*y.shape[:-1], self.heads, self.d_kv).transpose(-2, -3)

  def forward(self, x: torch.Tensor, kv_input: torch.Tensor, bias: torch.Tensor,
              dropout: float, training: bool, return_probs: bool = False):
    """x [N, Lq, D], kv_input [N, Lk, D], bias float32 broadcastable to [N, H, Lq, Lk]
    (position bias with the mask folded in) -> out [N, Lq, D] (and probs [N, H, Lq, Lk])."""
    q, k, v = self._heads(x, self.q), self._heads(kv_input, self.k), self._heads(kv_input, self.v)
    scores = torch.matmul(q, k.transpose(-1, -2)).float() + bias
    probs = F.dropout(torch.softmax(scores, dim=-1), dropout, training)
    ctx = torch.matmul(probs.to(v.dtype), v).transpose(-2, -3)
    out = F.linear(ctx.reshape(*ctx.shape[:-2], -1), self.o.to(x.dtype))
    return (out, probs) if return_probs else out


class GatedGeluFF(nn.Module):
  """wo(dropout(gelu_tanh(wi_0 x) * wi_1 x)), torch Linear layout."""

  def __init__(self, c: OfficialConfig):
    super().__init__()
    self.wi_0 = nn.Parameter(torch.empty(c.d_ff, c.d_model))
    self.wi_1 = nn.Parameter(torch.empty(c.d_ff, c.d_model))
    self.wo = nn.Parameter(torch.empty(c.d_model, c.d_ff))

  def forward(self, x: torch.Tensor, dropout: float, training: bool) -> torch.Tensor:
    hidden = (F.gelu(F.linear(x, self.wi_0.to(x.dtype)), approximate="tanh")
              * F.linear(x, self.wi_1.to(x.dtype)))
    return F.linear(F.dropout(hidden, dropout, training), self.wo.to(x.dtype))


class EncoderBlock(nn.Module):

  def __init__(self, c: OfficialConfig):
    super().__init__()
    self.attention_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.attention = Attention(c)
    self.mlp_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.mlp = GatedGeluFF(c)
    self.dropout = c.dropout_rate

  def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    x = self.attention_norm(h, h.dtype)
    h = h + F.dropout(self.attention(x, x, bias, self.dropout, self.training), self.dropout,
                      self.training)
    y = self.mlp(self.mlp_norm(h, h.dtype), self.dropout, self.training)
    return h + F.dropout(y, self.dropout, self.training)


class DecoderBlock(nn.Module):

  def __init__(self, c: OfficialConfig):
    super().__init__()
    self.self_attention_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.self_attention = Attention(c)
    self.cross_attention_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.cross_attention = Attention(c)
    self.mlp_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.mlp = GatedGeluFF(c)
    self.dropout = c.dropout_rate

  def forward(self, h: torch.Tensor, memory: torch.Tensor, self_bias: torch.Tensor,
              cross_bias: torch.Tensor, return_cross_probs: bool = False):
    p, training = self.dropout, self.training
    x = self.self_attention_norm(h, h.dtype)
    h = h + F.dropout(self.self_attention(x, x, self_bias, p, training), p, training)
    x = self.cross_attention_norm(h, h.dtype)
    y, probs = self.cross_attention(x, memory, cross_bias, p, training, return_probs=True)
    h = h + F.dropout(y, p, training)
    h = h + F.dropout(self.mlp(self.mlp_norm(h, h.dtype), p, training), p, training)
    return (h, probs) if return_cross_probs else h


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
  """Mean of x [..., L, D] over mask [..., L], float32 -> [..., D]."""
  m = mask.float().unsqueeze(-1)
  return (x.float() * m).sum(-2) / m.sum(-2).clamp(min=1.0)


class OfficialClassModel(nn.Module):
  """The CLASS retriever-reader, official per-pair formulation."""

  def __init__(self, c: OfficialConfig, compute_dtype: torch.dtype = torch.float32,
               checkpointed_layers: Sequence[int] = ()):
    super().__init__()
    self.config = c
    self.compute_dtype = compute_dtype
    self.checkpointed_layers = frozenset(checkpointed_layers)
    self.shared = nn.Parameter(torch.empty(c.vocab_size, c.d_model))
    self.encoder_relpos = nn.Parameter(torch.empty(c.num_heads, c.relative_attention_num_buckets))
    self.encoder_blocks = nn.ModuleList(EncoderBlock(c) for _ in range(c.num_encoder_layers))
    self.encoder_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.decoder_relpos = nn.Parameter(torch.empty(c.num_heads, c.relative_attention_num_buckets))
    self.decoder_blocks = nn.ModuleList(DecoderBlock(c) for _ in range(c.num_decoder_layers))
    self.decoder_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.lm_head = nn.Parameter(torch.empty(c.vocab_size, c.d_model))
    self.query_proj = nn.Parameter(torch.empty(c.d_model, c.d_model))
    self.passage_proj = nn.Parameter(torch.empty(c.d_model, c.d_model))
    self.retriever_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
    self.reset_parameters()

  @torch.no_grad()
  def reset_parameters(self) -> None:
    """Random init of the same scales as clqa_jax's (fan-in normal kernels, N(0, 1) tables,
    U(+-1/sqrt(D)) retriever projections)."""
    c = self.config
    for name, p in self.named_parameters():
      if name.endswith("scale"):
        nn.init.ones_(p)
      elif name in ("shared", "encoder_relpos", "decoder_relpos"):
        nn.init.normal_(p, std=1.0)
      elif name in ("query_proj", "passage_proj"):
        nn.init.uniform_(p, -c.d_model ** -0.5, c.d_model ** -0.5)
      else:
        std = p.shape[1] ** -0.5 * (c.d_kv ** -0.5 if name.endswith(".q") else 1.0)
        nn.init.normal_(p, std=std)

  def _relpos_bias(self, table: torch.Tensor, length: int, bidirectional: bool) -> torch.Tensor:
    """[H, buckets] -> float32 bias [H, L, L]."""
    c = self.config
    pos = torch.arange(length, device=table.device)
    buckets = relative_position_bucket(pos[None, :] - pos[:, None], bidirectional,
                                       c.relative_attention_num_buckets,
                                       c.relative_attention_max_distance)
    return table[:, buckets].float()

  def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
    h = F.embedding(tokens, self.shared).to(self.compute_dtype)
    return F.dropout(h, self.config.dropout_rate, self.training)

  def _run_block(self, i: int, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    block = self.encoder_blocks[i]
    if self.training and i in self.checkpointed_layers:
      return torch_checkpoint.checkpoint(block, h, bias, use_reentrant=False)
    return block(h, bias)

  def _retriever(self, pooled: torch.Tensor, is_query: bool) -> torch.Tensor:
    weight = self.query_proj if is_query else self.passage_proj
    return self.retriever_norm(F.linear(pooled, weight), torch.float32)

  def forward(self, x: torch.Tensor, attention: torch.Tensor, q_mask: torch.Tensor,
              p_mask: torch.Tensor, independent: torch.Tensor,
              decoder_input_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pairs from ``official_pairs`` (x, attention, q_mask, p_mask [B, K, L], independent
    [B, K, L, L]) and decoder_input_tokens [B, T] -> query_vectors [B, D], passage_vectors
    [B, K, D], retrieval_scores [B, K], reader_relevance [B, K], logits float32 [B, T, V]."""
    c = self.config
    b, k, length = x.shape
    r = c.retriever_layer
    neg = torch.finfo(torch.float32).min
    position_bias = self._relpos_bias(self.encoder_relpos, length, True)[None]   # [1,H,L,L]
    h = self._embed(x.reshape(b * k, length))
    lower_bias = position_bias.masked_fill(~independent.reshape(b * k, 1, length, length), neg)
    for i in range(r):
      h = self._run_block(i, h, lower_bias)
    u = self.encoder_blocks[r].attention_norm(h, h.dtype).reshape(b, k, length, -1)
    query_vectors = self._retriever(masked_mean(u, q_mask), True).mean(1)       # K copies
    passage_vectors = self._retriever(masked_mean(u, p_mask), False)
    scores = torch.einsum("bd,bkd->bk", query_vectors, passage_vectors)
    upper_bias = position_bias.masked_fill(~attention.reshape(b * k, 1, 1, length), neg)
    for i in range(r, c.num_encoder_layers):
      h = self._run_block(i, h, upper_bias)
    memory = F.dropout(self.encoder_norm(h, h.dtype), c.dropout_rate, self.training)
    memory = memory.reshape(b, k * length, -1)
    t = decoder_input_tokens.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
    self_bias = self._relpos_bias(self.decoder_relpos, t, False).masked_fill(~causal, neg)[None]
    cross_bias = torch.zeros(b, 1, 1, k * length, device=x.device).masked_fill(
        ~attention.reshape(b, 1, 1, k * length), neg)
    h = self._embed(decoder_input_tokens)
    last = c.num_decoder_layers - 1
    for i, block in enumerate(self.decoder_blocks):
      out = block(h, memory, self_bias, cross_bias, return_cross_probs=i == last)
      h, probs = out if i == last else (out, None)
    relevance = probs[:, :, 0].reshape(b, c.num_heads, k, length).sum(-1).mean(1)
    h = F.dropout(self.decoder_norm(h, h.dtype), c.dropout_rate, self.training)
    logits = F.linear(h, self.lm_head.to(h.dtype)).float()
    return dict(query_vectors=query_vectors, passage_vectors=passage_vectors,
                retrieval_scores=scores, reader_relevance=relevance, logits=logits)


def official_pairs(query_tokens: torch.Tensor, passage_tokens: torch.Tensor):
  """The reference collator: [B, Lq], [B, K, Lp] -> x, attention, query_mask, passage_mask
  [B, K, L] and the independent mask [B, K, L, L] of the [q; p] sequences (L = Lq + Lp)."""
  b, lq = query_tokens.shape
  _, k, lp = passage_tokens.shape
  length = lq + lp
  nq = (query_tokens > 0).sum(-1)                                       # [B]
  npas = (passage_tokens > 0).sum(-1)                                   # [B, K]
  j = torch.arange(length, device=query_tokens.device)
  in_q = j[None, :] < nq[:, None]                                       # [B, L]
  q_tok = query_tokens[:, j.clamp(max=lq - 1)]                          # [B, L]
  pj = (j[None, :] - nq[:, None])[:, None, :].expand(b, k, length)      # [B, K, L]
  p_tok = torch.gather(passage_tokens, 2, pj.clamp(0, lp - 1))
  in_p = (pj >= 0) & (pj < npas[..., None])
  q_mask = in_q[:, None, :].expand(b, k, length)
  x = torch.where(q_mask, q_tok[:, None, :].expand(b, k, length),
                  torch.where(in_p, p_tok, torch.zeros_like(p_tok)))
  attention = q_mask | in_p
  independent = ((q_mask[..., :, None] & q_mask[..., None, :])
                 | (~q_mask[..., :, None] & in_p[..., None, :]))
  return x, attention, q_mask, in_p, independent


def stage2_loss_terms(outputs: Mapping[str, torch.Tensor], targets: torch.Tensor,
                      weights: torch.Tensor, passage_present: torch.Tensor):
  """Per question: CE_tokmean [B] and KL(sg[relevance] || softmax_k scores) [B]."""
  log_probs = torch.log_softmax(outputs["logits"].float(), dim=-1)
  token_ce = -torch.gather(log_probs, -1, targets.long()[..., None])[..., 0]
  w = weights.float()
  ce = (token_ce * w).sum(-1) / w.sum(-1).clamp(min=1.0)
  target = outputs["reader_relevance"].detach().float().masked_fill(~passage_present, 0.0)
  student = torch.log_softmax(
      outputs["retrieval_scores"].float().masked_fill(~passage_present, -1e9), dim=-1)
  safe = torch.where(target > 0, target, torch.ones_like(target))
  kl = torch.where(target > 0, target * (torch.log(safe) - student),
                   torch.zeros_like(target)).sum(-1)
  return ce, kl


class OfficialTrainer:
  """One stage-2 step: per-question forward/backward chunks (the official code's GradCache
  chunks; the loss is a per-question sum, so the gradient is the full batch's), global-norm
  clipping at 1.0 and torch AdamW (0.9, 0.999, 1e-8, weight decay 0.01 on every parameter)
  with linear warm-up then decay."""

  def __init__(self, model: OfficialClassModel, *, peak_learning_rate: float = 5e-5,
               total_steps: int = 1000, warmup_fraction: float = 0.1,
               retriever_weight: float = 8.0, questions_per_chunk: int = 1,
               clip_norm: float = 1.0):
    self.model = model
    self.retriever_weight = retriever_weight
    self.questions_per_chunk = questions_per_chunk
    self.clip_norm = clip_norm
    self.optimizer = torch.optim.AdamW(model.parameters(), lr=peak_learning_rate,
                                       betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    warmup = math.ceil(total_steps * warmup_fraction)

    def factor(count: int) -> float:
      if count < warmup:
        return count / max(1, warmup)
      return max(0.0, total_steps - count) / max(1, total_steps - warmup)

    self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

  def loss(self, pairs: Sequence[torch.Tensor], batch: Mapping[str, torch.Tensor],
           num_questions: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The batch's (or a chunk's) loss, divided by ``num_questions``, and its terms."""
    outputs = self.model(*pairs, batch["decoder_input_tokens"])
    ce, kl = stage2_loss_terms(outputs, batch["decoder_target_tokens"],
                               batch["decoder_loss_weights"], batch["passage_rows"] >= 0)
    ce, kl = ce.sum() / num_questions, kl.sum() / num_questions
    return ce + self.retriever_weight * kl, {"reader_ce": ce, "retriever_kl": kl}

  def step(self, pairs: Sequence[torch.Tensor],
           batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """One optimizer step on pairs (``official_pairs``) and the batch's tensors; returns the
    loss and its terms (synchronising the device)."""
    self.model.train()
    n = batch["decoder_input_tokens"].shape[0]
    totals = {"loss": 0.0, "reader_ce": 0.0, "retriever_kl": 0.0}
    losses = []
    for start in range(0, n, self.questions_per_chunk):
      rows = slice(start, start + self.questions_per_chunk)
      loss, terms = self.loss([x[rows] for x in pairs], {k: v[rows] for k, v in batch.items()},
                              n)
      loss.backward()
      losses.append(torch.stack([loss.detach(), terms["reader_ce"].detach(),
                                 terms["retriever_kl"].detach()]))
    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
    self.optimizer.step()
    self.scheduler.step()
    self.optimizer.zero_grad(set_to_none=True)
    summed = torch.stack(losses).sum(0).tolist()
    return dict(zip(totals, summed))


def load_flax_params(model: OfficialClassModel, params: Mapping[str, Any]) -> None:
  """Copies a clqa_jax ``UnifiedRetrieverReader`` param tree (unscanned layers; any arrays
  numpy can read) into ``model``."""
  c = model.config

  def get(*path: str) -> np.ndarray:
    node: Any = params
    for key in path:
      node = node[key]
    return np.asarray(node, np.float32)

  def heads_in(kernel: np.ndarray) -> np.ndarray:      # [D, H, Dk] -> [H*Dk, D]
    return kernel.reshape(kernel.shape[0], -1).T

  def heads_out(kernel: np.ndarray) -> np.ndarray:     # [H, Dk, D] -> [D, H*Dk]
    return kernel.reshape(-1, kernel.shape[-1]).T

  def attention(module: Attention, *path: str) -> dict:
    return {module.q: heads_in(get(*path, "query")), module.k: heads_in(get(*path, "key")),
            module.v: heads_in(get(*path, "value")), module.o: heads_out(get(*path, "out"))}

  def mlp(module: GatedGeluFF, *path: str) -> dict:
    return {module.wi_0: get(*path, "wi_0").T, module.wi_1: get(*path, "wi_1").T,
            module.wo: get(*path, "wo").T}

  if "layers" in params["encoder"]:
    raise ValueError("load_flax_params: scanned layers (MT5Config.scan_layers) are not supported")
  values = {model.shared: get("token_embedder", "embedding"),
            model.encoder_relpos: get("encoder", "relpos_bias", "rel_embedding"),
            model.encoder_norm.scale: get("encoder", "encoder_norm", "scale"),
            model.decoder_relpos: get("decoder", "relpos_bias", "rel_embedding"),
            model.decoder_norm.scale: get("decoder", "decoder_norm", "scale"),
            model.lm_head: get("decoder", "logits_dense").T,
            model.query_proj: get("retriever", "query_proj").T,
            model.passage_proj: get("retriever", "passage_proj").T,
            model.retriever_norm.scale: get("retriever", "layer_norm", "scale")}
  for i, block in enumerate(model.encoder_blocks):
    layer = ("encoder", f"layers_{i}")
    values[block.attention_norm.scale] = get(*layer, "pre_attention_layer_norm", "scale")
    values[block.mlp_norm.scale] = get(*layer, "pre_mlp_layer_norm", "scale")
    values.update(attention(block.attention, *layer, "attention"))
    values.update(mlp(block.mlp, *layer, "mlp"))
  for i, block in enumerate(model.decoder_blocks):
    layer = ("decoder", f"layers_{i}")
    values[block.self_attention_norm.scale] = get(*layer, "pre_self_attention_layer_norm",
                                                  "scale")
    values[block.cross_attention_norm.scale] = get(*layer, "pre_cross_attention_layer_norm",
                                                   "scale")
    values[block.mlp_norm.scale] = get(*layer, "pre_mlp_layer_norm", "scale")
    values.update(attention(block.self_attention, *layer, "self_attention"))
    values.update(attention(block.cross_attention, *layer, "encoder_decoder_attention"))
    values.update(mlp(block.mlp, *layer, "mlp"))
  if len(values) != len(list(model.parameters())):
    raise ValueError(f"load_flax_params: mapped {len(values)} of "
                     f"{len(list(model.parameters()))} parameters")
  with torch.no_grad():
    for param, value in values.items():
      if tuple(param.shape) != value.shape:
        raise ValueError(f"load_flax_params: shape {value.shape} for a {tuple(param.shape)} "
                         "parameter")
      param.copy_(torch.tensor(value))
