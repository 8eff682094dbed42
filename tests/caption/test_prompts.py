"""Prompt templates: the shipped file, rendering, and bad files."""
from __future__ import annotations

from pathlib import Path

import pytest

from viral.caption.prompts import chat_messages, load_templates, render, template_for, text_hash
from viral.config import ConfigError
from viral.stage import StageError

SHIPPED = Path(__file__).resolve().parents[2] / "viral/caption/prompts.yaml"


def test_shipped_templates_follow_the_authors():
    templates = load_templates(SHIPPED)
    assert set(templates) == {"title", "plain"}
    assert templates["title"].count("{title}") == 1 and "{title}" not in templates["plain"]
    for text in templates.values():  # the CoT shape: think first, then only the final 2-3 sentences
        assert "think about" in text and "2-3 sentence" in text and "final description" in text
        assert "\n" not in text  # folded YAML: one paragraph


def test_render_keeps_braces_in_titles_and_handles_missing_titles():
    assert render("T: {title}. Go.", " Mug {large} ") == "T: Mug {large}. Go."
    assert render("T: {title}. Go.", None) == "T: . Go."
    assert render("No title here.", "Mug") == "No title here."


def test_text_hash_is_stable_and_short():
    assert text_hash("abc") == "ba7816bf8f01cfea" and text_hash("abd") != text_hash("abc")


def test_messages_put_the_image_first():
    (turn,) = chat_messages("Describe.")
    assert turn["role"] == "user" and [part["type"] for part in turn["content"]] == ["image", "text"]


@pytest.mark.parametrize(
    "content, error, expected",
    [
        ("prompts: [a, b]\n", StageError, "expected a mapping `prompts:`"),
        ("other: 1\n", StageError, "expected a mapping `prompts:`"),
        ("prompts:\n  title: ''\n", StageError, "prompts.title: expected non-empty template text"),
        ("prompts:\n  title: [x\n", ConfigError, "line 3"),
    ],
)
def test_bad_prompt_files(tmp_path, content, error, expected):
    path = tmp_path / "prompts.yaml"
    path.write_text(content)
    with pytest.raises(error, match=expected):
        load_templates(path)


def test_missing_prompt_name_and_file(tmp_path):
    with pytest.raises(StageError, match="no template for prompt 'plain'; it has title"):
        template_for({"title": "x"}, "plain", "p.yaml")
    with pytest.raises(ConfigError, match="file not found"):
        load_templates(tmp_path / "none.yaml")
