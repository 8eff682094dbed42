import numpy as np
import pytest
import scipy.sparse as sp
import torch

from viral.models.base import sparse_csr
from viral.models.layers import ItemItemGraph, ModalityGCN, SlotGCN, homogeneous, layer_sum


def _random_graph(n: int, seed: int, symmetric: bool) -> sp.csr_matrix:
    m = sp.random(n, n, density=0.3, random_state=seed, dtype=np.float32)
    return sp.csr_matrix(m + m.T if symmetric else m)


def test_layer_sum_is_sum_of_powers():
    a = _random_graph(7, 0, symmetric=True)
    x = torch.randn(7, 3)
    dense = torch.from_numpy(a.toarray())
    expected = x + dense @ x + dense @ dense @ x
    assert torch.allclose(layer_sum(sparse_csr(a), x, 2), expected, atol=1e-5)
    assert torch.equal(layer_sum(sparse_csr(a), x, 0), x)


@pytest.mark.parametrize("combine", ["last", "sum", "mean"])
def test_homogeneous_against_dense_reference_and_gradient(combine):
    a = _random_graph(6, 1, symmetric=False)
    dense = torch.from_numpy(a.toarray())
    x = torch.randn(6, 4, requires_grad=True)
    hops = [dense @ x, dense @ dense @ x]
    expected = {
        "last": x + hops[1],
        "sum": x + hops[0] + hops[1],
        "mean": (x + hops[0] + hops[1]) / 3,
    }[combine]
    got = homogeneous(sparse_csr(a), sparse_csr(a.T), x, 2, combine)
    assert torch.allclose(got, expected, atol=1e-5)
    # The gradient through a non-symmetric graph needs its transpose: compare with dense autograd.
    weights = torch.randn(6, 4)
    (grad_sparse,) = torch.autograd.grad((got * weights).sum(), x)
    (grad_dense,) = torch.autograd.grad((expected * weights).sum(), x)
    assert torch.allclose(grad_sparse, grad_dense, atol=1e-5)


def test_modality_gcn_matches_dense_reference():
    torch.manual_seed(0)
    n_users, n_items = 4, 5
    r = sp.random(n_users, n_items, density=0.5, random_state=3, format="csr", dtype=np.float32)
    r.data[:] = 1
    adj = sp.bmat([[None, r], [r.T, None]]).tocsr()
    gcn = ModalityGCN(n_users, in_dim=6, hidden_dim=8, out_dim=3)
    features = torch.randn(n_items, 6)
    items = gcn.mlp.out(torch.nn.functional.leaky_relu(gcn.mlp.hidden(features)))
    x = torch.cat([gcn.preference, items])
    x = x / x.norm(dim=1, keepdim=True)
    dense = torch.from_numpy(adj.toarray())
    expected = x + dense @ x + dense @ dense @ x
    got = gcn(features, sparse_csr(adj), 2)
    assert got.shape == (n_users + n_items, 3)
    assert torch.allclose(got, expected, atol=1e-5)


def test_slot_gcn_equals_separate_dense_per_slot_gcns():
    torch.manual_seed(0)
    n_users, n_items, dim = 4, 5, 3
    r = sp.random(n_users, n_items, density=0.5, random_state=3, format="csr", dtype=np.float32)
    r.data[:] = 1
    adj = sp.bmat([[None, r], [r.T, None]]).tocsr()
    in_dims = [6, 2, 9]
    gcn = SlotGCN(n_users, in_dims, hidden_dim=8, out_dim=dim)
    features = [torch.randn(n_items, d) for d in in_dims]
    got = gcn(features, sparse_csr(adj), 2)
    assert got.shape == (n_users + n_items, 3 * dim)
    dense = torch.from_numpy(adj.toarray())
    for slot, (mlp, feature) in enumerate(zip(gcn.mlps, features)):
        assert mlp.hidden.in_features == in_dims[slot]
        preference = gcn.preference[:, slot * dim : (slot + 1) * dim]  # this slot's user table
        items = mlp.out(torch.nn.functional.leaky_relu(mlp.hidden(feature)))
        x = torch.cat([preference, items])
        x = x / x.norm(dim=1, keepdim=True)
        expected = x + dense @ x + dense @ dense @ x
        assert torch.allclose(got[:, slot * dim : (slot + 1) * dim], expected, atol=1e-5)


def test_item_item_graph_adds_the_last_hop_with_gradients_through_its_transpose():
    a = _random_graph(6, 2, symmetric=False)
    dense = torch.from_numpy(a.toarray())
    x = torch.randn(6, 4, requires_grad=True)
    graph = ItemItemGraph(a, n_layers=2)
    got, expected = graph(x), x + dense @ dense @ x
    assert torch.allclose(got, expected, atol=1e-5)
    weights = torch.randn(6, 4)
    (grad_sparse,) = torch.autograd.grad((got * weights).sum(), x)
    (grad_dense,) = torch.autograd.grad((expected * weights).sum(), x)
    assert torch.allclose(grad_sparse, grad_dense, atol=1e-5)
    assert not graph.state_dict(), "the graph is an input, not a weight"
