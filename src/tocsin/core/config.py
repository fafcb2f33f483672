"""Configuration from ``TOCSIN_*`` environment variables and an optional file.

Every piece of local state lives under ``data_dir`` so that one directory is
all there is to back up (or wipe) on the embedded default.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="root of all local state")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite file under data_dir"
    )
    bus_url: str | None = Field(
        default=None, description="redis://host:port/db to share events between app nodes"
    )
    media_dir: Path | None = None
    keys_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    ws_deflate: bool = Field(
        default=False, description="negotiate permessage-deflate on websockets: off, since "
        "compressing each frame for each socket costs more CPU than the whole fan-out and "
        "a zlib context per socket; the big frames (positions) are compact binary")
    access_token_ttl: int = Field(default=900, ge=10, description="seconds")
    refresh_token_ttl: int = Field(default=30 * 86400, ge=60, description="seconds")
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    login_max_failures: int = Field(default=5, ge=1, description="per account and window")
    login_window_seconds: int = Field(default=900, ge=1)
    tile_url: str | None = Field(default=None, description="raster tile URL for production maps")
    ledger_origin: str = Field(default="tocsin.local/ledger",
                               description="the log's name: checkpoint origin and key name")
    ledger_policy_file: Path | None = Field(
        default=None, description="c2sp tlog-policy file: witnesses (with URLs) and quorum")
    ledger_checkpoint_seconds: float = Field(
        default=10.0, gt=0, description="how often new events are sealed in a checkpoint")
    ledger_writer: bool = Field(
        default=True, description="this node may append (the one holding the log lock does)")
    config_file: Path | None = Field(default=None, description="optional TOML file of settings")

    @field_validator("database_url", "bus_url", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return v or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("TOCSIN_CONFIG_FILE")
        if path:
            from pydantic_settings import TomlConfigSettingsSource

            if not Path(path).is_file():
                raise FileNotFoundError(f"TOCSIN_CONFIG_FILE={path}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # Derived locations -------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tocsin.sqlite3').resolve()}"

    @property
    def resolved_media_dir(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    @property
    def geo_dir(self) -> Path:
        return self.data_dir / "geo"

    @property
    def ledger_dir(self) -> Path:
        return self.data_dir / "ledger"

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.resolved_media_dir, self.resolved_keys_dir, self.geo_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.resolved_keys_dir, 0o700)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
