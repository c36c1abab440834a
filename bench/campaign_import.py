"""Importing a campaign audience of 100,000 CSV rows: the import job (services.campaigns.import_audience) reads
the stored file, parses and checks every number with `phonenumbers`, checks the variables, finds duplicates and
opted-out numbers (5 % of the valid rows are on the list), and writes the recipients and the refused rows (line
and reason) to PostgreSQL in one transaction. Target: under 20 s. Baseline, measured in the same run: the same
file through the bare `csv` module (the least any import must do). The validation alone is printed as well.

Uses BENCH_EVENTS_DATABASE_URL / BENCH_EVENTS_REDIS_URL like the other benchmarks (the database is reset).

    .venv/bin/python bench/campaign_import.py [rows]
"""

from __future__ import annotations

import csv
import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._events_setup import environ, reset_database, seed_sessions
from portal.services.campaigns.audience import validate_csv

TARGET_SECONDS = 20.0


def make_csv(rows: int) -> tuple[bytes, set[str]]:
    """rows lines: ~90 % valid, the rest malformed, duplicated or missing a variable; 5 % of the valid opted out."""
    rng = random.Random(7)
    out = io.StringIO()
    out.write("phone,name,city\n")
    opted: set[str] = set()
    for i in range(rows):
        roll = rng.random()
        digits = f"49170{1000000 + i:07d}"
        if roll < 0.03:
            out.write(f"12ab{i},Bad,X\n")
        elif roll < 0.06:
            out.write(f"+49 170 {1000000 + max(i - 1, 0):07d},Dup,X\n")
        elif roll < 0.08:
            out.write(f"+{digits},,Lisbon\n")
        else:
            out.write(f"+{digits},Person {i},Berlin\n")
            if roll > 0.95:
                opted.add(f"{digits}@c.us")
    return out.getvalue().encode(), opted


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    content, opted = make_csv(rows)
    started = time.perf_counter()
    baseline_rows = sum(1 for _ in csv.reader(io.StringIO(content.decode())))
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    result = validate_csv(content, ["name"], lambda ids: ids & opted)
    seconds = time.perf_counter() - started

    full, stored = import_into_postgres(content, opted)

    print(f"rows: {rows:,} ({baseline_rows - 1:,} read by the baseline)")
    print(f"accepted {len(result.rows):,}, refused {len(result.rejects):,} (each with line and reason)")
    print(f"stored: {stored}")
    print(f"baseline (csv module only): {baseline:.2f} s")
    print(f"validation alone: {seconds:.2f} s = {seconds / baseline:.1f}x the baseline")
    print(f"import job (validation + PostgreSQL): {full:.2f} s = {full / baseline:.1f}x the baseline")
    print(f"target: import job < {TARGET_SECONDS:.0f} s -> {'OK' if full < TARGET_SECONDS else 'MISSED'}")


def import_into_postgres(content: bytes, opted: set[str]) -> tuple[float, str]:
    """Run the import job on a fresh benchmark database; returns its time and what it stored."""
    import tempfile

    from sqlalchemy import func, insert, select

    from portal import create_app
    from portal.extensions import db
    from portal.models import Campaign, CampaignRecipient, CampaignReject, OptOut, utcnow
    from portal.services import campaigns
    from portal.storage import storage

    reset_database()
    session = seed_sessions(1)[0]
    with tempfile.TemporaryDirectory() as media_root:
        app = create_app(environ(MEDIA_ROOT=media_root))
        with app.app_context():
            now = utcnow()
            db.session.execute(
                insert(OptOut),
                [
                    {"tenant_id": session["tenant_id"], "chat_id": c, "source": "import", "created_at": now}
                    for c in opted
                ],
            )
            storage().save("campaigns/bench.csv", content, "text/csv")
            campaign = Campaign(
                tenant_id=session["tenant_id"],
                name="bench",
                state="importing",
                session_ids=[session["id"]],
                template="Hi {{name}}",
                variables=["name"],
                audience={"kind": "csv", "key": "campaigns/bench.csv", "columns": ["phone", "name", "city"]},
            )
            db.session.add(campaign)
            db.session.commit()
            started = time.perf_counter()
            campaigns.import_audience(campaign.id)
            seconds = time.perf_counter() - started
            recipients = db.session.scalar(select(func.count()).select_from(CampaignRecipient))
            rejects = db.session.scalar(select(func.count()).select_from(CampaignReject))
            state = db.session.get(Campaign, campaign.id).state
            db.engine.dispose()
    return seconds, f"{recipients:,} recipients and {rejects:,} refused rows, campaign {state}"


if __name__ == "__main__":
    main()
