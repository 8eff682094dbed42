"""GRCN (Wei et al., ACM MM 2020): the user-item graph is refined by the item content before an ID
graph convolution runs on it.

1. Graph refining, per modality m (a "CGCN"): items enter as L2-normalised leaky_relu(Linear(f_m)),
   users as an L2-normalised preference vector. Routing, `n_routing` times: each user attends over its
   items (softmax of p_u . i_m) and p_u <- normalise(p_u + sum_i alpha_ui i_m). Then every edge t <- s
   of the two-way graph gets the attention alpha^m_ts (softmax of x_t . x_s over t's neighbours), and the
   modality's node representation is x + sum_s alpha^m_ts x_s.
2. Edge weights: w_ts = relu(max_m alpha^m_ts c_s^m), with c_s a learned confidence per node and
   modality (of the sending node, as the authors' code); the ReLU prunes edges with negative weight.
3. An ID GCN on the refined graph: x = normalise(ID embedding), x + W x + W^2 x (`n_id_layers` = 2).
4. Final node embedding [id || visual || text] (192-d), dot-product score; BPR loss plus L2 on the
   batch's ID embeddings and user preferences.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.graphs.user_item import interaction_matrix
from viral.models.base import ModelInputs, Recommender, mean_square, node_bpr, published
from viral.models.layers import EdgeGraph, bipartite_pattern
from viral.train.config import TrainingPoint

MODALITIES = ("visual", "text")  # the order of the content blocks in the final embedding: [id || v || t]


@dataclass(frozen=True)
class Config:
    embedding_dim: int = bounded(64, ge=1)  # ID embedding (MMRec: embedding_size)
    content_dim: int = bounded(64, ge=1)  # each modality's refining layer (MMRec: latent_embedding)
    # MMRec's yaml n_layers: 3. Both codes aggregate the routing step into the ITEM rows, so their user
    # preferences never change: n_routing: 0 computes exactly what they do.
    n_routing: int = bounded(3, ge=0)
    n_id_layers: int = bounded(2, ge=1)  # the ID GCN's hops (hard-coded 2 in both codes)
    # MMRec's grids: reg {0.1, ..., 1e-5} x lr {1, 0.1, ..., 1e-4}, no best point stated. lr: MMRec's
    # default; reg: the authors' code default (in MMRec's grid).
    reg_weight: float = bounded(1e-5, ge=0)
    train: TrainingPoint = published(lr=1e-3, batch_size=2048)


class ContentGCN(nn.Module):
    """GRCN's graph refining layer for one modality. Returns the node representations (users first)
    and the per-edge attention alpha^m_ts over the two-way user-item graph."""

    def __init__(self, n_users: int, feature_dim: int, dim: int, n_routing: int) -> None:
        super().__init__()
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim)))
        self.project = nn.Linear(feature_dim, dim)
        nn.init.xavier_normal_(self.project.weight)
        self.n_routing = n_routing

    def forward(self, features: torch.Tensor, user_items: EdgeGraph, graph: EdgeGraph
                ) -> tuple[torch.Tensor, torch.Tensor]:
        items = F.normalize(F.leaky_relu(self.project(features)), dim=1)
        users = F.normalize(self.preference, dim=1)
        for _ in range(self.n_routing):
            alpha = user_items.softmax(user_items.scores(users, items))  # each user over its items
            users = F.normalize(users + user_items.propagate(alpha, items), dim=1)
        x = torch.cat([users, items])
        attention = graph.softmax(graph.scores(x, x))
        return x + graph.propagate(attention, x), attention


class GRCN(Recommender):
    Config = Config
    requires = frozenset({"text", "visual"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs, MODALITIES)
        self.user_items = EdgeGraph(interaction_matrix(inputs.train_pairs, inputs.n_users, inputs.n_items))
        self.graph = EdgeGraph(bipartite_pattern(inputs.train_pairs, inputs.n_users, inputs.n_items))  # two-way
        n_nodes = inputs.n_users + inputs.n_items
        self.content = nn.ModuleDict(
            {name: ContentGCN(inputs.n_users, getattr(self, name).shape[1], config.content_dim, config.n_routing)
             for name in MODALITIES})
        self.confidence = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_nodes, len(MODALITIES))))
        self.id_embedding = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_nodes, config.embedding_dim)))

    def edge_weights(self, attention: list[torch.Tensor]) -> torch.Tensor:
        """w_ts = relu(max_m alpha^m_ts c^m_s): the refined, pruned graph."""
        confidence = self.confidence.index_select(0, self.graph.col)  # the sending node's, per modality
        return torch.relu((torch.stack(attention, dim=1) * confidence).amax(dim=1))

    def propagate(self) -> torch.Tensor:
        """Final node embeddings (users first): [id || visual || text]."""
        content, attention = zip(*(gcn(getattr(self, name), self.user_items, self.graph)
                                   for name, gcn in self.content.items()))
        weights = self.edge_weights(list(attention))
        x = F.normalize(self.id_embedding, dim=1)
        total, h = x, x
        for _ in range(self.config.n_id_layers):
            h = self.graph.propagate(weights, h)
            total = total + h
        return torch.cat([total, *content], dim=1)

    def dense_blocks(self) -> list[nn.Module]:
        """The modality projections."""
        return [gcn.project for gcn in self.content.values()]

    def loss(self, users, pos, neg):
        bpr = node_bpr(self.propagate(), self.n_users, users, pos, neg)
        reg = mean_square(self.id_embedding, users, torch.cat([pos, neg]) + self.n_users)
        reg = reg + sum(mean_square(gcn.preference, users) for gcn in self.content.values())
        reg = self.config.reg_weight * reg
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        nodes = self.propagate()
        return nodes[: self.n_users], nodes[self.n_users :]

    def summary(self):
        return {"n_routing": self.config.n_routing}
