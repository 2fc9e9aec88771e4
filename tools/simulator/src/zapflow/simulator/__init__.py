"""A simulated WhatsApp provider for local runs, tests and benchmarks.

Speaks Meta's Cloud API send format (and Evolution's ``sendText``), answers like the provider,
sends signed status webhooks (sent → delivered → read) and optional inbound replies to the
gateway, and appends every accepted send to an audit log. ``zapflow.simulator.audit`` compares
that log with what Zapflow recorded (``zapflow audit``). Start with ``create_app`` and
``SimulatorSettings``; the README has the settings format.
"""

from zapflow.simulator.app import create_app
from zapflow.simulator.audit import AuditReport, ChannelAudit, ExpectedSend, Pace, audit
from zapflow.simulator.auditlog import AuditRecord
from zapflow.simulator.config import NumberConfig, SimulatorSettings
from zapflow.simulator.core import Deps, Simulator

__all__ = [
    "AuditRecord",
    "AuditReport",
    "ChannelAudit",
    "Deps",
    "ExpectedSend",
    "NumberConfig",
    "Pace",
    "Simulator",
    "SimulatorSettings",
    "audit",
    "create_app",
]
