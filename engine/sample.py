"""A realistic, seeded sample corpus: changes and announcements, several customers per
document, several statuses, spread over 120 days. Used by the demo, the tests and the benchmarks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

CUSTOMERS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"]
STATUSES = {
    "change": ["draft", "submitted", "approved", "implemented", "cancelled"],
    "announcement": ["draft", "published", "archived"],
}
TITLES = [
    "Database failover",
    "Network maintenance",
    "Kernel patching",
    "TLS rotation",
    "Quarterly review",
    "New region",
    "Deprecation notice",
    "Incident follow-up",
]


def sample_documents(
    count: int, seed: int = 7, days: int = 120, now: datetime | None = None
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    docs = []
    for n in range(count):
        type_name = "change" if rng.random() < 0.6 else "announcement"
        modified = now - timedelta(seconds=rng.randrange(days * 86400))
        created = modified - timedelta(seconds=rng.randrange(14 * 86400))
        doc: dict[str, Any] = {
            "id": f"{'CHG' if type_name == 'change' else 'ANN'}-{n:06d}",
            "object_type": type_name,
            "title": f"{rng.choice(TITLES)} #{n}",
            "customer_codes": sorted(rng.sample(CUSTOMERS, rng.randint(1, 3))),
            "status": rng.choice(STATUSES[type_name]),
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "modified_at": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "owner": {"team": rng.choice(["sre", "netops", "dba"]), "oncall": rng.random() < 0.3},
        }
        if type_name == "change":
            doc["risk"] = rng.choice(["low", "medium", "high"])
        docs.append(doc)
    return docs
