from viral.stage import run_stage
from viral.graphs.run import run_graphs

if __name__ == "__main__":
    run_stage("graphs", run_graphs)
