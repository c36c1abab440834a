"""A worker runs jobs in its own process, each in an app context of its own, as each request has."""

from __future__ import annotations

from flask import g
from rq import Queue

from portal.extensions import redis_store
from portal.jobs import QUEUE_MAINTENANCE, make_worker


def leave_something_in_g() -> str | None:
    seen = g.get("left_by_a_job")
    g.left_by_a_job = "first job"
    return seen


def test_a_job_does_not_see_what_the_job_before_it_left_in_g(app):
    with app.app_context():
        queue = Queue(QUEUE_MAINTENANCE, connection=redis_store.client)
        path = f"{__name__}.leave_something_in_g"
        first, second = queue.enqueue(path), queue.enqueue(path)
        make_worker([QUEUE_MAINTENANCE], simple=True).work(burst=True, with_scheduler=False)
        assert first.get_status(refresh=True) == second.get_status(refresh=True) == "finished"
        assert (first.return_value(), second.return_value()) == (None, None)
        assert "left_by_a_job" not in g  # nor in the worker's own context
