"""Caption prompts as data: templates from a versioned YAML file, rendering, hashing, chat messages."""
from __future__ import annotations

import hashlib
from pathlib import Path

from viral.config import read_yaml
from viral.stage import StageError

TITLE_FIELD = "{title}"


def load_templates(path: str | Path) -> dict[str, str]:
    """`prompts:` of the YAML file at `path` as name -> template text."""
    path = Path(path)
    prompts = read_yaml(path).get("prompts")
    if not isinstance(prompts, dict) or not prompts:
        raise StageError(f"{path}: expected a mapping `prompts:` of prompt name -> template text")
    for name, text in prompts.items():
        if not isinstance(text, str) or not text.strip():
            raise StageError(f"{path}: prompts.{name}: expected non-empty template text, got {text!r}")
    return {str(name): text.strip() for name, text in prompts.items()}


def template_for(templates: dict[str, str], prompt: str, path: str | Path) -> str:
    if prompt not in templates:
        raise StageError(f"{path}: no template for prompt {prompt!r}; it has {', '.join(sorted(templates))}")
    return templates[prompt]


def render(template: str, title: str | None) -> str:
    """The user text for one item. Plain replacement (not str.format): titles may contain braces."""
    return template.replace(TITLE_FIELD, (title or "").strip())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def chat_messages(user_text: str) -> list[dict]:
    """One user turn: the image first, then the instruction (Qwen's reference order)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text}]}]


def render_chat(processor, user_text: str) -> str:
    """The model's own chat format for one image + instruction, ending with the open assistant turn."""
    return processor.apply_chat_template(chat_messages(user_text), add_generation_prompt=True, tokenize=False)
