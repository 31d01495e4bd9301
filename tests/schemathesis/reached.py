"""Fails unless the contract run reached the success paths it is meant to exercise: a
publish answered 201, a history page 200 and a stream 200 — a run that only ever got
refusals would prove nothing about the answers clients build on.

    python3 reached.py REPORT_DIR   (schemathesis's ndjson report)
"""

import collections
import json
import pathlib
import sys

WANTED = {"POST /v1/events": 201, "GET /v1/events": 200, "GET /t/{slug}/stream": 200}

answers = collections.defaultdict(collections.Counter)
for report in pathlib.Path(sys.argv[1]).glob("*.ndjson"):
    for line in report.read_text().splitlines():
        event = json.loads(line)
        scenario = event.get("ScenarioFinished")
        if not scenario:
            continue
        for interaction in scenario["recorder"].get("interactions", {}).values():
            response = interaction.get("response")
            label = f'{interaction["request"]["method"]} {scenario["recorder"]["label"].split(" ", 1)[1]}'
            if response:
                answers[label][response["status_code"]] += 1
for label, status in WANTED.items():
    print(f"contract: {label}: {dict(sorted(answers[label].items()))}")
missing = [f"{label} → {status}" for label, status in WANTED.items() if not answers[label][status]]
if missing:
    sys.exit("contract: never reached " + "; ".join(missing))
