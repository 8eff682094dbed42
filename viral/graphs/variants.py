"""Every graph the registered models read, by name: the graphs stage writes each one to its own file,
and a model lists the names it needs in `requires`, so switching models never rebuilds a graph.

| name | what | read by |
|---|---|---|
| ui | user-item bipartite graph, 1/sqrt(d_u d_i) (LightGCN) | every graph model |
| ii_viral | top-k of S = mean of the modalities' cosine similarities, S weights, `ii_norm` (VIRAL eq. 3) | VIRAL |
| ii_dragon | per modality top-k, 1/k rows, `dragon_image_weight` x visual + rest x text (DRAGON's mm_adj) | DRAGON, FREEDOM, ... |
| ii_lattice_text, ii_lattice_visual | one modality's top-k similarity-weighted graph, D^-1/2 S D^-1/2 (LATTICE) | LATTICE |
| uu | each user's top-k co-interaction neighbours, softmax or row-normalised counts | VIRAL |
| uu_counts | each user's top-`uu_list_k` co-users with raw counts (DRAGON's user_graph_dict) | DRAGON-family |
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from viral.graphs.config import GraphsConfig
from viral.graphs.item_item import item_item_graph
from viral.graphs.user_item import normalized_adjacency
from viral.graphs.user_user import co_interaction_lists, user_user_graph


@dataclass(frozen=True)
class GraphSource:
    """What a graph is built from: the train pairs, id ranges over all splits, and the item features."""

    pairs: np.ndarray
    n_users: int
    n_items: int
    features: Callable[[], dict[str, np.ndarray]]  # read on first use: interaction graphs never need them


@dataclass(frozen=True)
class Variant:
    modalities: tuple[str, ...]  # the feature files it reads ("" = interactions only)
    settings: Callable[[GraphsConfig, int], dict[str, Any]]  # the params it depends on (its fingerprint)
    build: Callable[[GraphSource, GraphsConfig, int, bool], sp.csr_matrix]
    unit: str  # what its throughput counts


def _ii_viral(source: GraphSource, config: GraphsConfig, seed: int, progress: bool) -> sp.csr_matrix:
    return item_item_graph(source.features(), config.knn_k, method="viral_avgsim", self_loop=config.ii_self_loop,
                           norm=config.ii_norm, chunk_rows=config.chunk_rows, progress=progress)


def _ii_dragon(source: GraphSource, config: GraphsConfig, seed: int, progress: bool) -> sp.csr_matrix:
    return item_item_graph(source.features(), config.knn_k, method="dragon_weighted",
                           image_weight=config.dragon_image_weight, self_loop=True, norm="none",
                           chunk_rows=config.chunk_rows, progress=progress)


def _ii_single(modality: str):
    def build(source: GraphSource, config: GraphsConfig, seed: int, progress: bool) -> sp.csr_matrix:
        return item_item_graph({modality: source.features()[modality]}, config.knn_k, method="viral_avgsim",
                               self_loop=True, norm="sym", chunk_rows=config.chunk_rows, progress=progress)
    return build


def _uu(source: GraphSource, config: GraphsConfig, seed: int, progress: bool) -> sp.csr_matrix:
    return user_user_graph(source.pairs, source.n_users, source.n_items, config.uu_k, weight=config.uu_weight,
                           pad=config.uu_pad, seed=seed, chunk_rows=config.chunk_rows, progress=progress)


def _uu_settings(config: GraphsConfig, seed: int) -> dict[str, Any]:
    settings = {"uu_k": config.uu_k, "uu_weight": config.uu_weight, "uu_pad": config.uu_pad}
    return {**settings, "seed": seed} if config.uu_pad == "random" else settings


VARIANTS: dict[str, Variant] = {
    "ui": Variant((), lambda config, seed: {}, unit="edges",
                  build=lambda source, config, seed, progress: normalized_adjacency(
                      source.pairs, source.n_users, source.n_items)),
    "ii_viral": Variant(("text", "visual"), unit="items", build=_ii_viral, settings=lambda config, seed: {
        "knn_k": config.knn_k, "ii_norm": config.ii_norm, "ii_self_loop": config.ii_self_loop}),
    "ii_dragon": Variant(("text", "visual"), unit="items", build=_ii_dragon, settings=lambda config, seed: {
        "knn_k": config.knn_k, "dragon_image_weight": config.dragon_image_weight}),
    "ii_lattice_text": Variant(("text",), lambda config, seed: {"knn_k": config.knn_k}, _ii_single("text"), "items"),
    "ii_lattice_visual": Variant(("visual",), lambda config, seed: {"knn_k": config.knn_k}, _ii_single("visual"),
                                 "items"),
    "uu": Variant((), _uu_settings, _uu, unit="users"),
    "uu_counts": Variant((), lambda config, seed: {"uu_list_k": config.uu_list_k}, unit="users",
                         build=lambda source, config, seed, progress: co_interaction_lists(
                             source.pairs, source.n_users, source.n_items, config.uu_list_k,
                             chunk_rows=config.chunk_rows, progress=progress)),
}


def build_variant(name: str, source: GraphSource, config: GraphsConfig, seed: int,
                  progress: bool = False) -> sp.csr_matrix:
    """Graph `name` built in memory (the graphs stage's content, without the files)."""
    return VARIANTS[name].build(source, config, seed, progress)


def buildable(name: str, modalities: set[str]) -> bool:
    """Whether graph `name` can be built from the feature files present."""
    needed = set(VARIANTS[name].modalities)
    if len(needed) > 1:  # a mixed item-item graph builds from whichever of its modalities are present
        return bool(needed & modalities)
    return needed <= modalities
