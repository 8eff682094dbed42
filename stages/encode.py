from viral.stage import run_stage
from viral.encode.run import run_encode

if __name__ == "__main__":
    run_stage("encode", run_encode)
