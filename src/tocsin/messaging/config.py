"""Messenger settings: ``TOCSIN_MESSAGING_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MessagingConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_MESSAGING_", extra="ignore")

    server_name: str = Field(default="tocsin.local", pattern=r"^[A-Za-z0-9.\-]+(:\d+)?$")
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    max_body_chars: int = Field(default=8000, ge=100, description="characters of a text message")
    max_event_bytes: int = Field(default=65536, ge=1024, description="JSON size of an event")
    rate_per_second: float = Field(default=10.0, gt=0, description="sends per device, sustained")
    rate_burst: int = Field(default=30, ge=1)
    history_limit: int = Field(default=100, ge=1, le=1000)
    ws_backlog_limit: int = Field(default=2000, ge=10)
    purge_interval: float = Field(default=3600.0, ge=0, description="seconds between "
                                  "retention purges on each node; 0 turns them off")
