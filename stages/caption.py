"""Caption every item image with one prompt: `python stages/caption.py <prompt>` (title | plain)."""
import sys

from viral.caption.run import run_caption
from viral.stage import run_stage

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/caption.py <prompt>   (a name in caption.prompts: title | plain)")
    run_stage("caption", lambda params: run_caption(params, sys.argv[1]))
