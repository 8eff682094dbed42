import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from viral.models.attention import (
    AttentionBlocks,
    RedundancyEstimator,
    SynergyEstimator,
    full_attention,
    neighbour_attention,
    neighbour_pattern,
    remove_component,
)


def reference_block(block: AttentionBlocks, group: int, query, context, allowed=None):
    """Group `group` of `block` written out by hand: multi-head softmax(q k^T / sqrt(d_head)) over the
    `allowed` (n_q, n_k) pairs (all when None), output projection, residual + LayerNorm, GELU FFN,
    residual + LayerNorm."""
    def linear(layer, x):
        return x @ layer.weight[group] + layer.bias[group, 0]

    def norm(layer, x):
        return F.layer_norm(x, x.shape[-1:], layer.weight[group, 0], layer.bias[group, 0])

    heads = block.heads
    q, k, v = (linear(layer, x).view(len(x), heads, -1).transpose(0, 1)
               for layer, x in ((block.query, query), (block.key, context), (block.value, context)))
    scores = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    attended = (scores.softmax(-1) @ v).transpose(0, 1).reshape(len(query), -1)
    x = norm(block.norm_attn, query + linear(block.out, attended))
    return norm(block.norm_ffn, x + linear(block.ffn_out, F.gelu(linear(block.ffn_in, x))))


def dense_attention(q, k, v, allowed=None):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ v


def _grads(output, inputs, weights):
    return torch.autograd.grad((output * weights).sum(), inputs)


@pytest.mark.parametrize("n_queries", [1, 7, 21])
def test_full_attention_matches_dense_softmax_attention_and_its_gradients(n_queries):
    torch.manual_seed(0)
    q = torch.randn(3, n_queries, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 13, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, 13, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, n_queries, 5, dtype=torch.float64)
    got, expected = full_attention(q, k, v), dense_attention(q, k, v)
    assert torch.allclose(got, expected, atol=1e-12)
    for a, b in zip(_grads(got, (q, k, v), weights), _grads(expected, (q, k, v), weights)):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.autograd.gradcheck(full_attention, (q[:, :3], k[:, :4], v[:, :4]))


def test_full_attention_in_bf16_stays_close_to_fp32():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 300, 16) for _ in range(3))
    exact = full_attention(q, k, v)
    low = full_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert low.dtype == torch.bfloat16
    assert (low.float() - exact).norm() / exact.norm() < 2e-2


def test_neighbour_pattern_adds_self():
    graph = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 0], [1, 0, 2]], dtype=np.float32))
    pattern = neighbour_pattern(graph)
    expected = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    assert torch.equal(pattern.csr(torch.ones(len(pattern.col))).to_dense(), expected)


def _allowed(pattern) -> torch.Tensor:
    """The pattern as a dense boolean matrix, built from its index arrays by hand."""
    allowed = torch.zeros(pattern.shape, dtype=torch.bool)
    allowed[pattern.row, pattern.col] = True
    return allowed


def test_neighbour_attention_matches_masked_dense_attention():
    torch.manual_seed(0)
    pattern = neighbour_pattern(sp.random(9, 9, density=0.3, random_state=1, format="csr"))
    q, k, v = (torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    weights = torch.randn(2, 9, 4, dtype=torch.float64)
    got = neighbour_attention(q, k, v, pattern)
    expected = dense_attention(q, k, v, _allowed(pattern))
    assert torch.allclose(got, expected, atol=1e-12)
    for a, b in zip(_grads(got, (q, k, v), weights), _grads(expected, (q, k, v), weights)):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *x: neighbour_attention(*x, pattern), (q, k, v))


def test_neighbour_attention_in_bf16_runs_in_fp32_and_returns_bf16():
    torch.manual_seed(0)
    pattern = neighbour_pattern(sp.random(50, 50, density=0.1, random_state=1, format="csr"))
    q, k, v = (torch.randn(2, 50, 16) for _ in range(3))
    exact = neighbour_attention(q, k, v, pattern)
    low = neighbour_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), pattern)
    assert low.dtype == torch.bfloat16
    assert (low.float() - exact).norm() / exact.norm() < 2e-2


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_blocks_full_and_neighbour_modes_match_the_hand_written_layer(heads):
    torch.manual_seed(0)
    block = AttentionBlocks(groups=2, width=8, heads=heads, ffn_mult=2)
    query, context = torch.randn(2, 10, 8), torch.randn(2, 10, 8)
    pattern = neighbour_pattern(sp.random(10, 10, density=0.3, random_state=1, format="csr"))
    full = block(query, context)
    local = block(query, context, pattern)
    for group in range(2):
        expected = reference_block(block, group, query[group], context[group])
        assert torch.allclose(full[group], expected, atol=1e-5)
        expected = reference_block(block, group, query[group], context[group], _allowed(pattern))
        assert torch.allclose(local[group], expected, atol=1e-5)


def test_scalable_synergy_with_complete_neighbourhoods_equals_faithful():
    torch.manual_seed(0)
    synergy = SynergyEstimator(width=8, heads=2, ffn_mult=2)
    visual, text = torch.randn(6, 8), torch.randn(6, 8)
    everyone = neighbour_pattern(sp.csr_matrix(np.ones((6, 6), dtype=np.float32)))
    for faithful, scalable in zip(synergy(visual, text), synergy(visual, text, everyone)):
        assert faithful.shape == (6, 8)
        assert torch.allclose(faithful, scalable, atol=1e-5)


def reference_tbr(tbr: RedundancyEstimator, visual, text):
    """Eqs. 9-11 written out: three separate 2-token sequences through the shared encoder F."""
    e_v, e_t = tbr.type_embeddings
    mask_v, mask_t = tbr.mask_tokens
    outputs = []
    for first, second in ((visual, text), (visual, mask_t.expand_as(text)), (mask_v.expand_as(visual), text)):
        pooled = []
        for tokens in torch.stack([first + e_v, second + e_t], dim=1):  # one item's (2, w) sequence
            pooled.append(reference_block(tbr.encoder, 0, tokens, tokens).mean(0))
        outputs.append(tbr.project(torch.stack(pooled)))
    return outputs


@pytest.mark.parametrize("heads", [1, 2])
def test_redundancy_shared_token_projections_match_three_separate_passes(heads):
    torch.manual_seed(0)
    tbr = RedundancyEstimator(width=8, heads=heads, ffn_mult=2, out_width=12)
    visual, text = torch.randn(5, 8, requires_grad=True), torch.randn(5, 8, requires_grad=True)
    got = [tbr.project(pooled) for pooled in tbr(visual, text)]
    expected = reference_tbr(tbr, visual, text)
    weights = torch.randn(5, 12)
    for a, b in zip(got, expected):
        assert a.shape == (5, 12)
        assert torch.allclose(a, b, atol=1e-5)
    parameters = (visual, text, *tbr.parameters())
    got_grads = _grads(sum(got), parameters, weights)
    for a, b in zip(got_grads, _grads(sum(expected), parameters, weights)):
        assert torch.allclose(a, b, atol=1e-5)


def test_redundancy_masked_views_ignore_the_masked_modality():
    torch.manual_seed(0)
    tbr = RedundancyEstimator(width=8, heads=2, ffn_mult=2, out_width=8)
    visual = torch.randn(4, 8, requires_grad=True)
    text = torch.randn(4, 8, requires_grad=True)
    h, h_v, h_t = (tbr.project(pooled) for pooled in tbr(visual, text))
    assert h.shape == h_v.shape == h_t.shape == (4, 8)
    grad_v_text = torch.autograd.grad(h_v.sum(), text, retain_graph=True, allow_unused=True)[0]
    grad_t_visual = torch.autograd.grad(h_t.sum(), visual, retain_graph=True, allow_unused=True)[0]
    assert grad_v_text is None or torch.count_nonzero(grad_v_text) == 0
    assert grad_t_visual is None or torch.count_nonzero(grad_t_visual) == 0
    grads = torch.autograd.grad(h.sum(), (visual, text))
    assert all(torch.count_nonzero(g) > 0 for g in grads)


def test_projection_leaves_v_orthogonal_to_r():
    torch.manual_seed(0)
    v, r = torch.randn(50, 16), torch.randn(50, 16)
    unique = remove_component(v, r)
    assert torch.allclose((unique * r).sum(-1), torch.zeros(50), atol=1e-4)
    # v = v' + (v.r/|r|^2) r: only the r component was removed.
    removed = v - unique
    cosine = torch.nn.functional.cosine_similarity(removed, r, dim=-1).abs()
    assert torch.allclose(cosine, torch.ones(50), atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
def test_cuda_fused_attention_matches_the_cpu_flash_kernel(dtype, tolerance):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 700, 64) for _ in range(3))
    weights = torch.randn(2, 700, 64)
    results = []
    for device in ("cpu", "cuda"):
        inputs = [x.to(device, dtype).requires_grad_() for x in (q, k, v)]
        out = full_attention(*inputs)
        results.append([out.float().cpu()] + [g.float().cpu() for g in _grads(out.float(), inputs, weights.to(device))])
    for a, b in zip(*results):
        assert ((a - b).norm() / b.norm()).item() < tolerance


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_attention_runs_a_fused_kernel_in_bounded_memory(dtype):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(2, 20_000, 64, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    torch.cuda.reset_peak_memory_stats()
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):  # no math fallback
        full_attention(q, k, v).sum().backward()
    assert torch.cuda.max_memory_allocated() < 2**30  # a (2, 20k, 20k) score matrix alone is 3.2 GB in fp32
