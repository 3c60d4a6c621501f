"""Prices from the pipeline's `estimate:` section applied to device-hours and stored bytes."""

from __future__ import annotations

from typing import NamedTuple

from models.estimate.config import EstimateConfig

_GB = 1e9  # storage is priced per decimal gigabyte-month


class DevicePrice(NamedTuple):
    """Which `price_per_hour` entry applies to a device, and its price per device-hour."""

    key: str
    per_hour: float


def device_price(prices: EstimateConfig, device: str) -> DevicePrice:
    """The GPU's own lower-case name when priced, else 'gpu'; 'cpu' is priced per core-hour."""
    if device == "cpu":
        return DevicePrice("cpu", prices.price_per_hour["cpu"])
    name = device.removeprefix("cuda:").lower()
    if name in prices.price_per_hour:
        return DevicePrice(name, prices.price_per_hour[name])
    return DevicePrice("gpu", prices.price_per_hour["gpu"])


def storage_cost_per_month(stored_bytes: int, prices: EstimateConfig) -> float | None:
    """Monthly price of keeping `stored_bytes`; None when no storage price is configured."""
    if prices.storage_price_per_gb_month is None:
        return None
    return stored_bytes / _GB * prices.storage_price_per_gb_month
