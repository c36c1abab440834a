"""Commands for the job side: `flask worker`, `flask scheduler`, `flask jobs ...`, `flask events ...`.

Flask runs every command inside an app context, so jobs of a worker (and the work horses of `--fork`) use the
database like any request does.
"""

from __future__ import annotations

import logging
from typing import Any

import click
import redis
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from rq.exceptions import StopRequested
from rq.worker import DequeueStrategy

from portal.jobs import make_worker, reconnect
from portal.queue import QUEUES, resolve, serve
from portal.services.errors import ServiceError

jobs_cli = AppGroup("jobs", help="Inspect and replay background jobs.")
events_cli = AppGroup("events", help="Webhook events from WAHA: sweep, replay, process.")
partitions_cli = AppGroup("partitions", help="Monthly partitions of messages and webhook_events (PostgreSQL).")


def _need_redis(what: str) -> None:
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException(f"{what} needs REDIS_URL; without it jobs run inside the web process.")


def _warm_storage() -> None:
    """Build the media storage once before the first job: an S3 backend's imports and service model are then
    loaded once per worker (with `--fork`, inherited by every work horse; the job builds only its own client)."""
    from portal.storage import storage

    try:
        storage()
    except Exception:
        logging.getLogger(__name__).warning("media storage could not be prepared", exc_info=True)


@click.command("worker")
@with_appcontext
@click.option(
    "--queues",
    "-q",
    default=",".join(QUEUES),
    show_default=True,
    help="Comma-separated queues, taken in turn from the first.",
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--simple/--fork",
    default=True,
    show_default=True,
    help="Run jobs in this process (the default), or fork a work horse per job: more isolated, but the fork and "
    "the horse's own database and Redis connections cost tens of milliseconds a job.",
)
@click.option("--name", default=None, help="Worker name (default: host and pid).")
def worker(queues: str, burst: bool, simple: bool, name: str | None) -> None:
    """Run an RQ worker on the events, forwarding and maintenance queues.

    Jobs run in the worker process by default: every job is one of the portal's own drains, bounded in time and
    releasing its database session when it ends, and the drains hand a worker over to the other queues every
    second or so, which a fork per job would make expensive (docs/events.md, "Running it"). While Redis is
    unreachable the worker waits and reconnects (logged once per outage) instead of exiting.
    """
    _need_redis("flask worker")
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise click.ClickException(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    from portal.extensions import redis_store

    serve(names)  # the drains of this worker hand over only for jobs it would run
    connection = redis_store.loop_client()
    _warm_storage()
    outage = reconnect.Outage("worker")
    logging.getLogger("rq.worker").addFilter(reconnect.OncePerOutage())
    previous = None
    try:
        while True:
            reconnect.wait_for_redis(connection, outage)
            if previous is not None:
                _forget_worker(previous)
            rq_worker = previous = make_worker(names, simple=simple, name=name, connection=connection)
            try:
                # Only one process at a time runs RQ's scheduler for delayed retries; the others skip it.
                # Queues are taken in turn, so a drain that hands over lets the other queues' jobs go first.
                rq_worker.work(
                    burst=burst,
                    with_scheduler=True,
                    logging_level=current_app.config.get("LOG_LEVEL", "INFO"),
                    dequeue_strategy=DequeueStrategy.ROUND_ROBIN,
                )
            except redis.RedisError as exc:
                outage.down(exc)
                continue
            if burst or getattr(rq_worker, "_stop_requested", False) or reconnect.reachable(connection):
                return  # RQ's loop ended on purpose (or on an error that is not an outage, as RQ decides)
            outage.down(redis.ConnectionError("the worker's loop ended while Redis was unreachable"))
    except (StopRequested, KeyboardInterrupt):
        return
    finally:
        serve(QUEUES)  # the process takes no queue of its own any more (a burst run inside another command)


def _forget_worker(rq_worker: Any) -> None:
    """Mark a worker that lost Redis as dead, so a new one may register under the same name."""
    try:
        rq_worker.register_death()
    except redis.RedisError:
        pass


@click.command("scheduler")
@with_appcontext
def scheduler() -> None:
    """Run the periodic jobs of portal/jobs/schedule.py with RQ's CronScheduler (run exactly one).

    While Redis is unreachable the scheduler waits and reconnects (logged once per outage) instead of exiting.
    """
    _need_redis("flask scheduler")
    from rq.cron import CronScheduler

    from portal.services import partitions

    # inserts never wait for the first scheduled run: the months ahead exist before any job is queued
    for name in partitions.ensure_quietly():
        click.echo(f"partition {name} created")

    from portal.extensions import redis_store
    from portal.jobs.schedule import entries

    connection = redis_store.loop_client()
    outage = reconnect.Outage("scheduler")
    listed = False
    try:
        while True:
            reconnect.wait_for_redis(connection, outage)
            cron = CronScheduler(connection=connection, logging_level=current_app.config.get("LOG_LEVEL", "INFO"))
            for entry in entries(current_app.config):
                cron.register(
                    resolve(entry.func),
                    queue_name=entry.queue,
                    interval=entry.interval,
                    name=entry.id,
                    result_ttl=600,
                    failure_ttl=7 * 24 * 3600,
                )
                if not listed:
                    click.echo(f"{entry.id}: {entry.func} every {entry.interval} s on {entry.queue}")
            listed = True
            try:
                cron.start()
            except redis.RedisError as exc:
                outage.down(exc)
                continue
            return  # stopped on a signal
    except (StopRequested, KeyboardInterrupt):
        return


def _failed_registries() -> list:
    from rq.registry import FailedJobRegistry

    from portal.extensions import redis_store

    return [FailedJobRegistry(name, connection=redis_store.client) for name in QUEUES]


@jobs_cli.command("failed")
@click.option("--limit", default=50, show_default=True)
def failed_jobs(limit: int) -> None:
    """List failed jobs with the last line of their error."""
    _need_redis("flask jobs failed")
    from rq.job import Job

    from portal.extensions import redis_store

    shown = 0
    for registry in _failed_registries():
        for job_id in registry.get_job_ids()[:limit]:
            job = Job.fetch(job_id, connection=redis_store.client)
            result = job.latest_result()
            error = (result.exc_string or "").strip().splitlines()[-1:] if result is not None else []
            click.echo(f"{job_id}\t{registry.name}\t{job.func_name}\t{job.args}\t{error[0] if error else ''}")
            shown += 1
    if not shown:
        click.echo("No failed jobs.")


@jobs_cli.command("requeue")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "all_jobs", is_flag=True, help="Requeue every failed job.")
def requeue_jobs(job_ids: tuple[str, ...], all_jobs: bool) -> None:
    """Put failed jobs back on their queue (all jobs are idempotent)."""
    _need_redis("flask jobs requeue")
    if not job_ids and not all_jobs:
        raise click.ClickException("give job ids or --all")
    count = 0
    for registry in _failed_registries():
        for job_id in registry.get_job_ids():
            if all_jobs or job_id in job_ids:
                registry.requeue(job_id)
                count += 1
    click.echo(f"Requeued {count} job(s).")


@jobs_cli.command("status")
def jobs_status() -> None:
    """Queue lengths and failed-job counts."""
    _need_redis("flask jobs status")
    from rq import Queue

    from portal.extensions import redis_store

    for name, registry in zip(QUEUES, _failed_registries(), strict=True):
        queue = Queue(name, connection=redis_store.client)
        click.echo(f"{name}\tqueued {len(queue)}\tfailed {registry.count}")


@events_cli.command("sweep")
@click.option("--older-than", default=30, show_default=True, help="Seconds an event may wait before it is queued.")
def sweep_events(older_than: int) -> None:
    """Queue processing for events that waited too long (Redis was down, a worker died)."""
    from portal.services import events

    waiting = events.sweep(older_than)
    click.echo(f"{waiting} event(s) were waiting; processing queued." if waiting else "No event is waiting.")


@events_cli.command("replay")
@click.argument("event_id")
def replay_event(event_id: str) -> None:
    """Process a stored event again (by WAHA event id or row id)."""
    from portal.services import events

    try:
        event = events.replay_event(event_id)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Event {event.event_id} ({event.event}) is pending again.")


@events_cli.command("process")
def process_events() -> None:
    """Process pending events now, in this process."""
    from portal.services import events

    result = events.drain()
    click.echo(f"{result.processed} processed, {result.failed} failed.")


@events_cli.command("status")
def events_status() -> None:
    """Stored events by status."""
    from portal.services import events

    for status, count in sorted(events.count_by_status().items()):
        click.echo(f"{status}\t{count}")


@partitions_cli.command("status")
def partitions_status() -> None:
    """The monthly partitions of messages and webhook_events (PostgreSQL), and months missing ahead."""
    from portal.services import partitions

    report = partitions.status()
    if not report:
        click.echo("The tables are not partitioned (SQLite, or the migration 0011 has not run).")
        return
    missing = False
    for table in report:
        for name, lower, upper, rows in table["partitions"]:
            click.echo(f"{table['table']}\t{name}\t{lower}\t{upper}\t~{max(rows, 0)} rows")
        for name in table["missing"]:
            missing = True
            click.echo(f"{table['table']}\t{name}\tMISSING")
    if missing:
        raise SystemExit(1)


@partitions_cli.command("ensure")
def partitions_ensure() -> None:
    """Create the partitions of this month and the next two where missing (what the scheduled job does)."""
    from portal.services import partitions

    created = partitions.ensure()
    click.echo("Created: " + ", ".join(created) if created else "Every partition ahead exists.")


def init_app(app: Flask) -> None:
    """Register the job commands on the app's CLI."""
    logging.getLogger("rq").setLevel(app.config.get("LOG_LEVEL", "INFO"))
    app.cli.add_command(worker)
    app.cli.add_command(scheduler)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(events_cli)
    app.cli.add_command(partitions_cli)
