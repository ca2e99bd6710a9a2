"""The battery simulation rules: balance, limits, efficiency, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from jobrunner_simulation.battery import Battery, simulate, totals

BATTERY = Battery(capacity_kwh=5.0, max_charge_kw=2.0, max_discharge_kw=3.0, efficiency=0.81)


def balance(load: np.ndarray, pv: np.ndarray, result) -> np.ndarray:
    """load + export + charge - (pv + import + discharge), per step."""
    return (
        load
        + result.grid_export
        + result.battery_charge
        - pv
        - result.grid_import
        - result.battery_discharge
    )


def random_profile(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random per-step load and PV energies in kWh."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 1.5, n) * (rng.random(n) < 0.5)


def test_energy_balances_and_soc_stays_within_capacity_at_every_step() -> None:
    """On random profiles the AC balance holds at each step and 0 <= soc <= capacity."""
    load, pv = random_profile(5000)
    result = simulate(load, pv, 0.25, BATTERY)
    assert np.abs(balance(load, pv, result)).max() < 1e-12
    assert result.soc.min() >= 0.0 and result.soc.max() <= BATTERY.capacity_kwh
    assert not np.any((result.grid_import > 0) & (result.grid_export > 0))
    assert not np.any((result.battery_charge > 0) & (result.battery_discharge > 0))


def test_power_limits_cap_charge_and_discharge_per_step() -> None:
    """A 0.25 h step moves at most max_charge_kw/4 in and max_discharge_kw/4 out."""
    load, pv = random_profile(2000, seed=1)
    result = simulate(load * 5, pv * 5, 0.25, BATTERY)
    assert result.battery_charge.max() <= 2.0 * 0.25 + 1e-12
    assert result.battery_discharge.max() <= 3.0 * 0.25 + 1e-12


def test_round_trip_efficiency_and_losses() -> None:
    """Charging 1 kWh stores 0.9 kWh at 81 % round trip; giving it back yields 0.81 kWh."""
    battery = Battery(
        capacity_kwh=10.0,
        max_charge_kw=10.0,
        max_discharge_kw=10.0,
        efficiency=0.81,
        initial_soc=0.0,
    )
    load = np.array([0.0, 2.0])
    pv = np.array([1.0, 0.0])
    result = simulate(load, pv, 1.0, battery)
    assert result.soc.tolist() == pytest.approx([0.9, 0.0])
    assert result.battery_discharge.tolist() == pytest.approx([0.0, 0.81])
    assert result.grid_import.tolist() == pytest.approx([0.0, 2.0 - 0.81])
    summary = totals(load, pv, result, battery)
    assert summary["losses"] == pytest.approx(1.0 - 0.81)
    assert summary["cycles"] == pytest.approx(1.8 / 20.0)


def test_surplus_with_a_full_battery_is_exported() -> None:
    """A full battery takes nothing: all surplus goes to the grid."""
    battery = Battery(capacity_kwh=2.0, max_charge_kw=5.0, max_discharge_kw=5.0, initial_soc=1.0)
    result = simulate(np.array([0.2]), np.array([1.0]), 1.0, battery)
    assert result.battery_charge.tolist() == [0.0]
    assert result.grid_export.tolist() == pytest.approx([0.8])


def test_totals_are_consistent() -> None:
    """Totals balance over the whole run and the shares lie in [0, 1]."""
    load, pv = random_profile(3000, seed=2)
    result = simulate(load, pv, 0.25, BATTERY)
    summary = totals(load, pv, result, BATTERY)
    assert summary["load"] + summary["grid_export"] + summary["battery_charge"] == pytest.approx(
        summary["pv"] + summary["grid_import"] + summary["battery_discharge"]
    )
    stored = summary["soc_final"] - summary["soc_initial"]
    assert summary["losses"] == pytest.approx(
        summary["battery_charge"] - summary["battery_discharge"] - stored
    )
    assert 0 <= summary["self_consumption"] <= 1 and 0 <= summary["self_sufficiency"] <= 1


def test_simulation_is_deterministic() -> None:
    """The same inputs give bit-identical results."""
    load, pv = random_profile(1000, seed=4)
    first, second = simulate(load, pv, 0.25, BATTERY), simulate(load, pv, 0.25, BATTERY)
    assert np.array_equal(first.soc, second.soc)
    assert np.array_equal(first.grid_import, second.grid_import)


def test_no_battery_means_direct_use_only() -> None:
    """With zero capacity every surplus is exported and every deficit imported."""
    load, pv = random_profile(500, seed=5)
    none = Battery(capacity_kwh=0.0, max_charge_kw=5.0, max_discharge_kw=5.0)
    result = simulate(load, pv, 0.25, none)
    assert np.allclose(result.grid_export - result.grid_import, pv - load)
    assert totals(load, pv, result, none)["cycles"] == 0.0
