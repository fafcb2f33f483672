"""Investigations: case files, their entities and links, nationwide search,
cross-case hits that respect need-to-know, standing watches, and the audit of
who looked at what."""
