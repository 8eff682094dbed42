"""Caption every item image with every prompt in `caption.prompts`: `python stages/caption.py`."""
import sys

from viral.caption.run import run_caption
from viral.stage import run_stage

if __name__ == "__main__":
    if len(sys.argv) != 1:
        sys.exit("usage: python stages/caption.py   (captions every prompt in caption.prompts; no arguments)")
    run_stage("caption", run_caption)
