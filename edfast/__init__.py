"""edfast: fast Energy Discrepancy training for energy-based models."""
