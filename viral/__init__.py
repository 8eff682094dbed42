"""VIRAL multimodal recommendation pipeline."""
