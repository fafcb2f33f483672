"""Tamper-evident history: the ledger engine wired to the platform.

``service`` seals every domain event into the Merkle log and signs checkpoints
that witnesses cosign; ``audit`` re-checks everything; ``api`` serves auditors.
"""
