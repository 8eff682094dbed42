from viral.stage import run_stage
from viral.train.run import run_train

if __name__ == "__main__":
    run_stage("train", run_train)
