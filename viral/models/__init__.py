"""The model registry: name -> "module:Class". Adding a model is one file plus one line here."""
from __future__ import annotations

import importlib

MODELS: dict[str, str] = {
    "bpr": "viral.models.bpr:BPR",
    "lightgcn": "viral.models.lightgcn:LightGCN",
    "viral": "viral.models.viral:VIRAL",
    "dragon": "viral.models.dragon:DRAGON",
    "freedom": "viral.models.freedom:FREEDOM",
    "lattice": "viral.models.lattice:LATTICE",
    "slmrec": "viral.models.slmrec:SLMRec",
    "vbpr": "viral.models.vbpr:VBPR",
    "mmgcn": "viral.models.mmgcn:MMGCN",
    "grcn": "viral.models.grcn:GRCN",
    "mentor": "viral.models.mentor:MENTOR",
    "cohesion": "viral.models.cohesion:COHESION",
}


def model_class(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)
