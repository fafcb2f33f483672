"""Tocsin: command and information system for police and gendarmerie forces."""

__version__ = "0.1.0"
