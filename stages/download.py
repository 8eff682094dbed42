from viral.stage import run_stage
from viral.data.download import run_download

if __name__ == "__main__":
    run_stage("download", run_download)
