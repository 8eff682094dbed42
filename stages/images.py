from viral.stage import run_stage
from viral.data.images import run_images

if __name__ == "__main__":
    run_stage("images", run_images)
