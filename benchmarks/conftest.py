import sys
from pathlib import Path

# The load generator is a plain module beside the benchmarks.
sys.path.insert(0, str(Path(__file__).parent))

# The lab fixtures the lab tests use (the pipeline benchmark runs on the test lab).
pytest_plugins = ["mailstack.lab.pytest_plugin"]
