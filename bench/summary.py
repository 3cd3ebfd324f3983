#!/usr/bin/env python3
"""One line about one run's report, for compare.sh's progress log. Usage: summary.py REPORT.json"""

import json
import sys

r = json.load(open(sys.argv[1]))
engine = r.get("audit", {}).get("engine", {})
print(f"{r['succeeded']}/{r['setup']['flows']} flows, {r['flows_per_minute']:.1f} flows/min, "
      f"engine writes/step {engine.get('writes_per_step', float('nan')):.2f}")
