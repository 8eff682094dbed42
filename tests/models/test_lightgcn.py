"""LightGCN against a dense reference: mean of layers 0..L over the normalised adjacency, BPR on the
final embeddings, EmbLoss on the ego embeddings; the sparse product's gradient against dense autograd."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from viral.graphs.user_item import normalized_adjacency
from viral.models.base import ModelInputs, bpr_loss, emb_loss, sparse_csr, spmm
from viral.models.lightgcn import Config, LightGCN


def small_inputs():
    rng = np.random.default_rng(0)
    pairs = np.array([(u, i) for u in range(6) for i in rng.choice(5, size=3, replace=False)])
    return ModelInputs(6, 5, pairs, graphs={"ui": normalized_adjacency(pairs, 6, 5)})


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_embeddings_are_the_mean_of_propagated_layers(layers):
    inputs = small_inputs()
    model = LightGCN(inputs, Config(embedding_dim=4, n_layers=layers))
    adjacency = torch.tensor(inputs.graphs["ui"].toarray(), dtype=torch.float64)
    ego = torch.cat([model.user_embedding, model.item_embedding]).detach().double()
    expected = sum(torch.linalg.matrix_power(adjacency, k) @ ego for k in range(layers + 1)) / (layers + 1)
    users, items = model.embeddings()
    assert torch.allclose(torch.cat([users, items]).double(), expected, atol=1e-6)


def test_loss_regularises_the_ego_embeddings():
    model = LightGCN(small_inputs(), Config(embedding_dim=4, n_layers=2, reg_weight=0.3))
    u, p, n = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 3])
    losses = model.loss(u, p, n)
    users, items = model.embeddings()
    bpr = bpr_loss((users[u] * items[p]).sum(1), (users[u] * items[n]).sum(1))
    reg = 0.3 * emb_loss(model.user_embedding[u], model.item_embedding[p], model.item_embedding[n])
    assert losses["bpr"].item() == pytest.approx(bpr.item(), rel=1e-6)
    assert losses["reg"].item() == pytest.approx(reg.item(), rel=1e-6)


@pytest.mark.parametrize("symmetric", [True, False])
def test_sparse_product_gradient_matches_dense(symmetric):
    rng = np.random.default_rng(1)
    dense = sp.random(7, 7, density=0.4, random_state=2, dtype=np.float32).toarray()
    if symmetric:
        dense = dense + dense.T
    a, a_t = sparse_csr(sp.csr_matrix(dense)), sparse_csr(sp.csr_matrix(dense.T))
    x = torch.tensor(rng.standard_normal((7, 3)), dtype=torch.float32, requires_grad=True)
    weights = torch.tensor(rng.standard_normal((7, 3)), dtype=torch.float32)
    (spmm(a, x, None if symmetric else a_t) * weights).sum().backward()
    x_dense = x.detach().clone().requires_grad_(True)
    (torch.tensor(dense) @ x_dense * weights).sum().backward()
    assert torch.allclose(x.grad, x_dense.grad, atol=1e-5)


def test_needs_the_user_item_graph():
    inputs = small_inputs()
    inputs.graphs.clear()
    with pytest.raises(ValueError, match=r"needs inputs \['ui'\]"):
        LightGCN(inputs, Config())
