"""A long drain hands its worker over only for a job that worker would run (`flask worker --queues`)."""

from __future__ import annotations

import pytest
from rq import Queue

from portal import queue
from portal.extensions import redis_store
from portal.queue import QUEUE_EVENTS, QUEUE_MAINTENANCE, QUEUES, others_waiting


@pytest.fixture
def served():
    queue.serve(QUEUES)  # as `flask worker` with its default queues (a CLI test may have run one in this process)
    yield queue.serve
    queue.serve(QUEUES)


def test_a_drain_hands_over_for_a_job_of_another_queue_its_worker_takes(app, served):
    with app.app_context():
        assert not others_waiting(QUEUE_EVENTS)
        Queue(QUEUE_MAINTENANCE, connection=redis_store.client).enqueue("os.getpid")
        assert others_waiting(QUEUE_EVENTS)
        assert not others_waiting(QUEUE_MAINTENANCE)  # a job of the drain's own queue waits its turn
        served([QUEUE_EVENTS, QUEUE_MAINTENANCE])
        assert others_waiting(QUEUE_EVENTS)
        served([QUEUE_EVENTS])  # a worker kept to events: that job is another worker's
        assert not others_waiting(QUEUE_EVENTS)


@pytest.mark.parametrize(("queues", "hands_over"), [("events", False), ("events,maintenance", True)])
def test_flask_worker_hands_over_only_for_the_queues_it_was_given(app, served, queues, hands_over):
    with app.app_context():
        events_job = Queue(QUEUE_EVENTS, connection=redis_store.client).enqueue(
            "portal.queue.others_waiting", QUEUE_EVENTS
        )
        Queue(QUEUE_MAINTENANCE, connection=redis_store.client).enqueue("os.getpid")
        result = app.test_cli_runner().invoke(args=["worker", "--burst", "--queues", queues])
        assert result.exit_code == 0, result.output
        assert events_job.get_status(refresh=True) == "finished"
        # what a drain of the events queue saw: the maintenance job counts only for a worker that takes it
        assert events_job.return_value() is hands_over
