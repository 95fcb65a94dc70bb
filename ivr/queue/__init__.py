"""Call queues (ACD, inbound CTI): callers wait in named queues and reach the next
available agent.  No SIP here; see :mod:`ivr.queue.engine` for how to drive it."""
from ivr.queue.agents import AgentState, AgentStateError
from ivr.queue.engine import QueueEngine, UnknownQueueError
from ivr.queue.entry import Dialer, EntryState, QueueEntry, RingAttempt
from ivr.queue.model import (Outcome, OutcomeKind, QueueConfig, QueueConfigError, Strategy,
                             queue_config_from_dict)

__all__ = [
    "AgentState", "AgentStateError", "Dialer", "EntryState", "Outcome", "OutcomeKind",
    "QueueConfig", "QueueConfigError", "QueueEngine", "QueueEntry", "RingAttempt",
    "Strategy", "UnknownQueueError", "queue_config_from_dict",
]
