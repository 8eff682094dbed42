from viral.stage import run_stage
from viral.data.prepare import run_prepare

if __name__ == "__main__":
    run_stage("prepare", run_prepare)
