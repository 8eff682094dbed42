import numpy as np
import scipy.sparse as sp
import torch

from viral.models.attention import (
    AttentionBlock,
    RedundancyEstimator,
    SynergyEstimator,
    neighbour_index,
    remove_component,
)


def _reference_attention(block: AttentionBlock, query, context, allowed):
    """Single-head block by hand: softmax(q k^T / sqrt(w)) restricted to `allowed` (n_q, n_k) pairs."""
    q, k, v = block.query(query), block.key(context), block.value(context)
    scores = (q @ k.T) / q.shape[-1] ** 0.5
    attended = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
    x = block.norm_attn(query + block.out(attended))
    return block.norm_ffn(x + block.ffn(x))


def test_neighbour_index_adds_self_and_pads():
    graph = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 0], [1, 0, 1]], dtype=np.float32))
    expected = np.array([[0, 1, 2], [1, -1, -1], [0, 2, -1]])
    assert np.array_equal(neighbour_index(graph).numpy(), expected)


def test_attention_block_full_and_neighbour_modes_match_brute_force():
    torch.manual_seed(0)
    block = AttentionBlock(width=8, heads=1, ffn_mult=2)
    query, context = torch.randn(5, 8), torch.randn(5, 8)
    everything = torch.ones(5, 5, dtype=torch.bool)
    full = block(query[None], context[None])[0]
    assert torch.allclose(full, _reference_attention(block, query, context, everything), atol=1e-5)
    graph = sp.random(5, 5, density=0.3, random_state=1, format="csr")
    neighbours = neighbour_index(graph)
    allowed = torch.zeros(5, 5, dtype=torch.bool)
    for row, cols in enumerate(neighbours.tolist()):
        allowed[row, [c for c in cols if c >= 0]] = True
    local = block(query[:, None], context, neighbours)[:, 0]
    assert torch.allclose(local, _reference_attention(block, query, context, allowed), atol=1e-5)


def test_scalable_synergy_with_complete_neighbourhoods_equals_faithful():
    torch.manual_seed(0)
    synergy = SynergyEstimator(width=8, heads=2, ffn_mult=2)
    visual, text = torch.randn(6, 8), torch.randn(6, 8)
    everyone = neighbour_index(sp.csr_matrix(np.ones((6, 6), dtype=np.float32)))
    for faithful, scalable in zip(synergy(visual, text), synergy(visual, text, everyone)):
        assert faithful.shape == (6, 8)
        assert torch.allclose(faithful, scalable, atol=1e-5)


def test_redundancy_masked_views_ignore_the_masked_modality():
    torch.manual_seed(0)
    tbr = RedundancyEstimator(width=8, heads=2, ffn_mult=2)
    visual = torch.randn(4, 8, requires_grad=True)
    text = torch.randn(4, 8, requires_grad=True)
    h, h_v, h_t = tbr(visual, text)
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
