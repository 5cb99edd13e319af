import sys
from pathlib import Path

import harness.plugins

harness.plugins._testing = True
sys.path.insert(0, str(Path(__file__).parent))
