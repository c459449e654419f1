import sys
from pathlib import Path

# The load generator is a plain module beside the benchmarks.
sys.path.insert(0, str(Path(__file__).parent))
