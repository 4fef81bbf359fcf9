"""One person with 100,000 PostHog events (sessions of 50 events, 3 hours apart): the
timeline benchmark's workspace. Usage: heavy_person.py OUT.jsonl"""
import datetime
import json
import sys

t = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
names = ["$pageview", "clicked_button", "viewed_report", "$autocapture", "saved_filter"]
with open(sys.argv[1], "w") as f:
    for i in range(100_000):
        t += datetime.timedelta(seconds=20 if i % 50 else 3 * 3600)
        f.write(json.dumps({
            "uuid": f"00000000-0000-4000-8000-{i:012d}",
            "event": names[i % 5],
            "distinct_id": "heavy-user",
            "timestamp": t.isoformat(),
            "properties": {"$current_url": f"https://app.example.com/p/{i % 37}", "$browser": "Firefox", "n": i},
        }) + "\n")
